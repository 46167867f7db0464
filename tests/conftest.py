import logging
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

logging.getLogger("fairseq").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
