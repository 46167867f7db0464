"""What every other part of the package shares; the lowest layer, importing nothing of the package.

* :mod:`~echostream_fairseq.common.files`: atomic file writes and the clean-up of their leftovers.
* :mod:`~echostream_fairseq.common.audio`: the sample rate and encoder frame every part assumes,
  and the one check that turns a waveform argument into mono samples at a given rate.
* :mod:`~echostream_fairseq.common.text`: the subword convention (sentencepiece's word start).
* :mod:`~echostream_fairseq.common.cpu`: what this CPU has and what its kernels will run (the
  linear paths, ``--model-dtype``'s checks, the benchmarks' headers and the tests read it).
"""
