"""The pocketsphinx package and the US English model files its wheel ships.

pocketsphinx is an optional, evaluation-only dependency: it is imported on first use, so that the
rest of the package imports without it. Its wheel holds a US English acoustic model, a general
English trigram model and the CMU pronunciation dictionary; :func:`bundled_paths` says where.
"""

from __future__ import annotations

import os
from typing import Any, Dict

__all__ = ["import_pocketsphinx", "bundled_paths"]


def import_pocketsphinx() -> Any:
    """The pocketsphinx module, or an ImportError that says what to install."""
    try:
        import pocketsphinx
    except ImportError:
        raise ImportError("the ASR evaluation needs pocketsphinx: `pip install pocketsphinx==5.1.1`") from None
    return pocketsphinx


def bundled_paths() -> Dict[str, str]:
    """``{"hmm", "lm", "dict"}``: the acoustic model, general LM and CMU dictionary inside the wheel."""
    root = os.path.join(import_pocketsphinx().get_model_path(), "en-us")
    return {
        "hmm": os.path.join(root, "en-us"),
        "lm": os.path.join(root, "en-us.lm.bin"),
        "dict": os.path.join(root, "cmudict-en-us.dict"),
    }
