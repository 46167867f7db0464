# The README's contract: `make demo` and `make test` do all set-up themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.echostream-stack
TORCH_PINS := torch==2.14.1 torchaudio==2.11.0
FAIRSEQ_PIN := fairseq-fixed==0.12.3.1

.PHONY: install test bench demo clean

install: $(STAMP)

# One stamp for the whole stack: a second `make` with unchanged pins reinstalls nothing.
$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24" "setuptools<70" wheel
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -r requirements.txt $(TORCH_PINS)
	$(PIP) install -q --no-build-isolation $(FAIRSEQ_PIN) $(TORCH_PINS) numpy==1.26.4
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import torch, torchaudio, fairseq, simuleval, echostream_fairseq"
	touch $@

# The lesser CPU on any machine: the tests of every CPU-specific path again, with the kernels held to
# AVX2 (echostream_fairseq/common/cpu.py's AVX2_LIMITS; tests/common/test_cpu.py checks the two agree).
# On a CPU without AVX-512 the main run already is that lane, and it is not run twice.
AVX2_LIMITS := ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
AVX2_LANE := tests/common/test_cpu.py tests/modules/test_packed_linear.py tests/streaming/test_precision.py tests/modules/test_emformer_streaming.py \
	tests/vocoder/test_vocoder.py tests/vocoder/test_vocoder_causal.py tests/vocoder/test_vocoder_istft.py tests/vocoder/test_vocoder_padded.py \
	tests/bench/test_bench.py tests/bench/test_bench_system.py

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	bash tests/install_tools.sh
	$(PY) -m pytest -q -rs tests
	@if grep -q -w avx512f /proc/cpuinfo; then \
		echo "AVX2 lane: $(AVX2_LIMITS)"; \
		env $(AVX2_LIMITS) $(PY) -m pytest -q -rs $(AVX2_LANE); \
	else \
		echo "AVX2 lane: this CPU has no AVX-512, so the run above already was the AVX2 lane"; \
	fi

# the whole-system benchmark needs dictionaries and audio: a small synthetic corpus (seconds)
BENCH_CORPUS := results/bench_corpus
bench: $(STAMP)
	$(VENV)/bin/echostream-bench --compile --onnx --out results/bench
	$(VENV)/bin/echostream-bench-encoders --compile-sizes full --onnx-sizes full --out results/bench_encoders
	$(VENV)/bin/echostream-prep synthetic --out $(BENCH_CORPUS) --num-train 24 --num-dev 4 --num-test 16 --num-units 200 --seed 3
	$(VENV)/bin/echostream-bench-system --data $(BENCH_CORPUS) --out results/bench_system

demo: $(STAMP)
	bash examples/demo.sh

clean:
	rm -rf $(VENV) results build *.egg-info
