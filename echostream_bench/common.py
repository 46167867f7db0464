"""What every benchmark shares: writing its report, and compiling a step for this CPU.

The table's header line (the CPU, its flags and kernels, cores, torch and threads) is
:func:`echostream_fairseq.common.cpu.machine_header`, the package's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict

import torch

from echostream_fairseq.common.cpu import cpu_capabilities
from echostream_fairseq.common.files import atomic_open

__all__ = ["compile_step", "write_report"]


def write_report(out: Path, stem: str, results: Dict, table: str) -> None:
    """``STEM.json`` and ``STEM.md`` in ``out`` (made if missing), each written whole or not at all."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in ((f"{stem}.json", json.dumps(results, indent=1)), (f"{stem}.md", table)):
        with atomic_open(out / name) as f:  # never leave a half-written result behind
            f.write(text)


def compile_step(step: Callable) -> Callable:
    """``torch.compile(step, dynamic=False)``, its C++ code at the vector length this CPU needs
    (:attr:`~echostream_fairseq.common.cpu.CpuCapabilities.compiled_simd_bits`)."""
    bits = cpu_capabilities().compiled_simd_bits
    return torch.compile(step, dynamic=False, options=None if bits is None else {"cpp.simdlen": bits})
