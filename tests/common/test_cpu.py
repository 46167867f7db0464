"""What this CPU can do, in one place: the flags and kernels it reports, the dtypes it refuses and
why, and the AVX2 limits that let any machine behave as an AVX2-only CPU."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from echostream_fairseq.common.cpu import AVX2_LIMITS, CpuCapabilities, cpu_capabilities, machine_header
from echostream_fairseq.modules import precision
from echostream_fairseq.modules.precision import check_dtype

AVX512_FLAGS = frozenset({"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16"})
AVX2_FLAGS = frozenset({"avx2", "fma", "f16c"})


def _cpu(flags, aten="AVX2", onednn_bf16=False, fbgemm=True, limit="", vendor="GenuineIntel"):
    return CpuCapabilities("Test CPU", frozenset(flags), aten, onednn_bf16, fbgemm, limit, vendor)


def test_the_flags_and_kernels_are_named():
    big = _cpu(AVX512_FLAGS, "AVX512", onednn_bf16=True)
    assert (big.avx2, big.avx512, big.avx512_bf16, big.vnni, big.amx) == (True, True, True, True, False)
    assert big.header() == (
        "Test CPU (avx2, fma, avx512f, avx512bw, avx512_vnni, avx512_bf16; "
        "kernels: ATen AVX512, oneDNN bf16 yes (AVX512-BF16), fbgemm int8 yes (VNNI))"
    )
    amx = _cpu(AVX512_FLAGS | {"amx_tile", "amx_bf16"}, "AVX512", onednn_bf16=True)
    assert amx.amx and amx.kernels() == "ATen AVX512, oneDNN bf16 yes (AMX), fbgemm int8 yes (VNNI)"
    small = _cpu(AVX2_FLAGS)
    assert (small.avx2, small.avx512, small.avx512_bf16, small.vnni) == (True, False, False, False)
    # AVX512F alone is not what oneDNN's bf16 path asks for
    assert not _cpu({"avx2", "avx512f"}).avx512
    assert _cpu({"avx2", "avx_vnni"}).vnni
    capped = _cpu(AVX512_FLAGS, limit="AVX2")
    assert capped.kernels() == "ATen AVX2, oneDNN bf16 no (ONEDNN_MAX_CPU_ISA=AVX2), fbgemm int8 yes (VNNI)"
    assert small.kernels() == "ATen AVX2, oneDNN bf16 no, fbgemm int8 yes"


def test_compiled_code_keeps_to_256_bit_vectors_on_amd_avx512():
    assert _cpu(AVX512_FLAGS, vendor="AuthenticAMD").compiled_simd_bits == 256
    assert _cpu(AVX512_FLAGS, vendor="GenuineIntel").compiled_simd_bits is None
    assert _cpu(AVX2_FLAGS, vendor="AuthenticAMD").compiled_simd_bits is None


def test_each_dtype_runs_or_says_why(caplog, monkeypatch):
    small = _cpu(AVX2_FLAGS)
    assert small.dtype_refusal("fp32") is None and small.dtype_refusal("bf16") is None
    assert small.bf16_note() == (
        "oneDNN has no bf16 kernels here (the CPU shows neither AVX512-BW/VL/DQ nor "
        "AVX-NE-CONVERT): bf16 products run on ATen's kernels"
    )
    assert (
        _cpu(AVX512_FLAGS, limit="AVX2")
        .bf16_note()
        .startswith("oneDNN has no bf16 kernels here (ONEDNN_MAX_CPU_ISA=AVX2)")
    )
    assert (
        _cpu({"avx2", "avx_ne_convert"}, limit="AVX2")
        .bf16_note()
        .startswith("oneDNN has no bf16 kernels here (ONEDNN_MAX")
    )
    assert (
        _cpu(AVX512_FLAGS)
        .bf16_note()
        .startswith("oneDNN has no bf16 kernels here (this torch build has no oneDNN bf16")
    )
    assert _cpu(AVX512_FLAGS, onednn_bf16=True).bf16_note() is None
    old = _cpu({"sse4_2"}, aten="DEFAULT", fbgemm=False)
    with pytest.raises(
        ValueError,
        match=r"^--model-dtype int8 needs fbgemm's int8 kernels, which need AVX2, and this "
        r"CPU \(Test CPU\) has no AVX2; use fp32 or bf16$",
    ):
        check_dtype("int8", cpu=old)
    monkeypatch.setattr(precision, "_bf16_noted", [])  # the warning is said once per process
    with caplog.at_level(logging.WARNING, logger="echostream_fairseq.modules.precision"):
        check_dtype("bf16", cpu=old)  # runs, on ATen's kernels, and says so
        check_dtype("bf16", cpu=old)
        check_dtype("fp32", cpu=old)
    assert [r.getMessage() for r in caplog.records] == [
        "--model-dtype bf16: oneDNN has no bf16 kernels here "
        "(the CPU shows neither AVX512-BW/VL/DQ nor AVX-NE-CONVERT): "
        "bf16 products run on ATen's kernels, and fp32 is likely faster on this CPU (docs/speed.md)"
    ]
    check_dtype("int8", torch.device("cuda"), old)  # not the CPU's business (convert_precision refuses int8 there)
    with pytest.raises(ValueError, match="unknown dtype 'fp16'; use one of fp32, bf16, int8"):
        check_dtype("fp16", cpu=old)


def test_this_process_reports_what_torch_reports():
    cpu = cpu_capabilities()
    assert cpu.aten == torch.backends.cpu.get_cpu_capability()
    assert cpu.onednn_isa_limit == os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    # what the kernels report agrees with the hardware flags, unless a limit lowers them
    assert cpu.fbgemm == cpu.avx2
    if not cpu.onednn_isa_limit:
        assert cpu.onednn_bf16 == (cpu.avx512 or "avx_ne_convert" in cpu.flags)
    if not os.environ.get("ATEN_CPU_CAPABILITY"):
        assert cpu.aten == ("AVX512" if cpu.avx512 else "AVX2" if cpu.avx2 else "DEFAULT")
    assert machine_header().startswith(cpu.header() + f", {os.cpu_count()} cores, torch {torch.__version__}")


_REPORT = """
import json, torch
from echostream_fairseq.common.cpu import cpu_capabilities
cpu = cpu_capabilities()
torch.backends.mkldnn.verbose(1).__enter__()  # oneDNN prints its ISA with the first primitive it makes
error = ""
try:
    torch.ops.mkldnn._reorder_linear_weight(torch.ones(16, 16, dtype=torch.bfloat16), 16)
except RuntimeError as e:
    error = str(e)
torch.ops.mkldnn._reorder_linear_weight(torch.ones(16, 16), 16)
print("REPORT" + json.dumps({"aten": cpu.aten, "onednn_bf16": cpu.onednn_bf16, "bf16_pack_error": error}), flush=True)
"""


def test_the_avx2_limits_take_effect():
    """Under AVX2_LIMITS, ATen dispatches AVX2 kernels, oneDNN reports an AVX2 ISA and refuses to pack
    bf16 (the error AVX2-only CPUs give), whatever this machine has."""
    env = dict(os.environ, ONEDNN_VERBOSE="all", **AVX2_LIMITS)
    r = subprocess.run([sys.executable, "-c", _REPORT], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout.split("REPORT", 1)[1])
    assert report["aten"] == ("AVX2" if cpu_capabilities().avx2 else "DEFAULT") and report["onednn_bf16"] is False
    assert (
        "bf16 path needs the cpu support avx_ne_convert or avx512bw, avx512vl and avx512dq" in report["bf16_pack_error"]
    )
    isa = [line for line in r.stdout.splitlines() if ",info,cpu,isa:" in line]
    assert isa and "AVX-512" not in isa[0] and ("AVX2" in isa[0]) == cpu_capabilities().avx2, r.stdout[:2000]


def test_make_test_runs_its_avx2_lane_under_these_limits():
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    line = next(line for line in makefile.splitlines() if line.startswith("AVX2_LIMITS :="))
    assert dict(item.split("=", 1) for item in line.split(":=", 1)[1].split()) == AVX2_LIMITS
    assert "env $(AVX2_LIMITS) $(PY) -m pytest" in makefile


@pytest.mark.skipif(os.environ.get("ONEDNN_MAX_CPU_ISA") != "AVX2", reason="runs in make test's AVX2 lane only")
def test_this_lane_runs_avx2_kernels():
    cpu = cpu_capabilities()
    assert (cpu.aten, cpu.onednn_bf16, cpu.onednn_isa_limit) == ("AVX2" if cpu.avx2 else "DEFAULT", False, "AVX2")
