"""What this CPU has, and what the kernels in this process will run on it: the one place that knows.

Two views, because they differ:

* the **hardware** flags (``/proc/cpuinfo``, or torch's own CPU probe where that file is missing):
  what the chip offers, and what a benchmark table's header names;
* the **kernels in effect**: ATen's dispatch level (``ATEN_CPU_CAPABILITY`` can lower it), whether
  oneDNN runs bf16 (it needs AVX512-BW/VL/DQ or AVX-NE-CONVERT, and ``ONEDNN_MAX_CPU_ISA`` can take
  it away), and whether fbgemm's int8 kernels are there (fbgemm needs AVX2).

The linear layers' backend choice, ``--model-dtype``'s checks, the benchmarks' headers and the tests
all read :func:`cpu_capabilities`. A hypervisor may hide AVX-512 from a CPU that has it; what the
guest sees is what counts. To try a lesser CPU on this one, cap the kernels before Python starts:
``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2`` (:data:`AVX2_LIMITS`).
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from typing import FrozenSet, Optional

import torch

__all__ = ["AVX2_LIMITS", "CpuCapabilities", "cpu_capabilities", "machine_header"]

# the environment that makes this process's kernels behave as on an AVX2-only CPU (oneDNN, ATen, MKL);
# fbgemm has no such switch and keeps the hardware's kernels
AVX2_LIMITS = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}

# the hardware flags a header names, in order (Linux's names)
_HEADER_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "avx_ne_convert",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


@dataclass(frozen=True)
class CpuCapabilities:
    """This machine's CPU and the kernels that run on it in this process.

    ``flags``: the hardware's (lower-case Linux names, e.g. ``avx512_bf16``); ``aten``: ATen's dispatch
    level (``AVX512``, ``AVX2``, ``DEFAULT``, ...); ``onednn_bf16``: oneDNN runs bf16 products and
    convolutions here; ``fbgemm``: fbgemm's int8 kernels are available; ``onednn_isa_limit``: the
    ``ONEDNN_MAX_CPU_ISA`` in force ("" if none); ``vendor``: ``GenuineIntel``, ``AuthenticAMD``, ...
    ("" where unknown).
    """

    model: str
    flags: FrozenSet[str]
    aten: str
    onednn_bf16: bool
    fbgemm: bool
    onednn_isa_limit: str = ""
    vendor: str = ""

    @property
    def avx2(self) -> bool:
        return "avx2" in self.flags

    @property
    def avx512(self) -> bool:
        """The AVX-512 subsets oneDNN's bf16 path asks for (F, BW, VL, DQ)."""
        return {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= self.flags

    @property
    def avx512_bf16(self) -> bool:
        return "avx512_bf16" in self.flags

    @property
    def vnni(self) -> bool:
        return bool({"avx512_vnni", "avx_vnni"} & self.flags)

    @property
    def amx(self) -> bool:
        return {"amx_tile", "amx_bf16"} <= self.flags

    @property
    def compiled_simd_bits(self) -> Optional[int]:
        """The vector length ``torch.compile``'s C++ code should use here (None: inductor's own
        choice). 256 on AMD CPUs with AVX-512: inductor's AVX-512 code for the Emformer step
        corrupted the heap on an AMD EPYC (Zen 4) and not with 256-bit vectors (docs/decisions.md)."""
        return 256 if self.vendor == "AuthenticAMD" and self.avx512 else None

    def dtype_refusal(self, dtype: str) -> Optional[str]:
        """Why ``--model-dtype dtype`` cannot run on this CPU (None: it can).

        bf16 always runs: without oneDNN's bf16 kernels the products fall back to ATen's (see
        :meth:`bf16_note`). int8 needs fbgemm, which needs AVX2."""
        if dtype == "int8" and not self.fbgemm:
            return (
                f"--model-dtype int8 needs fbgemm's int8 kernels, which need AVX2, and this CPU ({self.model}) "
                f"{'has no AVX2' if not self.avx2 else 'runs a torch build without them'}; use fp32 or bf16"
            )
        return None

    def bf16_note(self) -> Optional[str]:
        """What bf16 loses on this CPU (None: nothing, oneDNN runs it)."""
        if self.onednn_bf16:
            return None
        if not self.avx512 and "avx_ne_convert" not in self.flags:
            why = "the CPU shows neither AVX512-BW/VL/DQ nor AVX-NE-CONVERT"
        elif self.onednn_isa_limit:
            why = f"ONEDNN_MAX_CPU_ISA={self.onednn_isa_limit}"
        else:
            why = "this torch build has no oneDNN bf16 kernels"
        return f"oneDNN has no bf16 kernels here ({why}): bf16 products run on ATen's kernels"

    def kernels(self) -> str:
        """The kernels in effect, in words, with the instructions that make them fast where the CPU has
        them: ``ATen AVX2, oneDNN bf16 no (ONEDNN_MAX_CPU_ISA=AVX2), fbgemm int8 yes (VNNI)``."""
        if self.onednn_bf16:
            bf16 = "yes (AMX)" if self.amx else "yes (AVX512-BF16)" if self.avx512_bf16 else "yes"
        else:
            bf16 = f"no (ONEDNN_MAX_CPU_ISA={self.onednn_isa_limit})" if self.onednn_isa_limit else "no"
        int8 = ("yes (VNNI)" if self.vnni else "yes") if self.fbgemm else "no"
        return f"ATen {self.aten}, oneDNN bf16 {bf16}, fbgemm int8 {int8}"

    def header(self) -> str:
        """The CPU model, the hardware flags of :data:`_HEADER_FLAGS` it has, and the kernels in effect."""
        shown = ", ".join(f for f in _HEADER_FLAGS if f in self.flags) or "none of " + "/".join(_HEADER_FLAGS)
        return f"{self.model} ({shown}; kernels: {self.kernels()})"


def _cpuinfo() -> tuple:
    model, flags, vendor = platform.processor() or "unknown CPU", frozenset(), ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("vendor_id") and not vendor:
                    vendor = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    if not vendor:  # no /proc/cpuinfo: the platform's processor string names the maker on some systems
        vendor = "AuthenticAMD" if "AMD" in model else "GenuineIntel" if "Intel" in model else ""
    if not flags:  # no /proc/cpuinfo (macOS, Windows): torch's own probe of the x86 features it uses
        probes = {
            "avx2": "_is_avx2_supported",
            "avx512f": "_is_avx512_supported",
            "avx512_vnni": "_is_vnni_supported",
            "avx512_bf16": "_is_avx512_bf16_supported",
            "amx_tile": "_is_amx_tile_supported",
        }
        flags = frozenset(name for name, probe in probes.items() if getattr(torch.cpu, probe, lambda: False)())
        if "avx512f" in flags:  # torch's AVX-512 probe checks the subsets its kernels use
            flags |= {"avx512bw", "avx512vl", "avx512dq"}
    return model, flags, vendor


def _onednn_bf16() -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


@functools.lru_cache(maxsize=1)
def cpu_capabilities() -> CpuCapabilities:
    """This process's :class:`CpuCapabilities` (read once: the limits are fixed when torch loads)."""
    model, flags, vendor = _cpuinfo()
    return CpuCapabilities(
        model=model,
        flags=flags,
        aten=torch.backends.cpu.get_cpu_capability(),
        onednn_bf16=_onednn_bf16(),
        fbgemm="fbgemm" in torch.backends.quantized.supported_engines,
        onednn_isa_limit=os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip(),
        vendor=vendor,
    )


def machine_header() -> str:
    """Every benchmark table's header: the CPU, its flags and kernels, cores, torch and its threads, Python."""
    return (
        f"{cpu_capabilities().header()}, {os.cpu_count()} cores, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}"
    )
