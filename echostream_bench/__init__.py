"""EchoStream's benchmarks, apart from the product package they measure.

Each module is one ``echostream-bench*`` command and prints tables with the machine above them
(:func:`~echostream_fairseq.common.cpu.machine_header`):

* :mod:`~echostream_bench.emformer_step` (``echostream-bench``): the Emformer step, every variant,
  its matmul floor (:mod:`~echostream_bench.floor`), profile, cost over a stream, memory;
* :mod:`~echostream_bench.encoders` (``echostream-bench-encoders``): Emformer against Zipformer;
* :mod:`~echostream_bench.system` (``echostream-bench-system``): the whole translator per stage and dtype;
* :mod:`~echostream_bench.batch` (``echostream-bench-batch``): many streams stepped as one batch;
* :mod:`~echostream_bench.serving` (``echostream-bench-serving``): our server beside simulstream's;
* :mod:`~echostream_bench.vocoder` (``echostream-bench-vocoder``): the vocoders, quality and speed;
* :mod:`~echostream_bench.agent` (``echostream-bench-agent``): the agent over a long stream, and
  the latency-quality curve.

:mod:`~echostream_bench.common` holds what they share. The package imports ``echostream_fairseq``;
``echostream_fairseq`` never imports it. Plots need the ``plots`` extra (matplotlib), which
``make install`` installs.
"""
