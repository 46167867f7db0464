"""Corpus preparation (``echostream-prep``) and the data the training task reads.

Modules, one concept each:

* :mod:`~echostream_fairseq.data.audio`: reading audio, fbank features, 16-bit wav writing.
* :mod:`~echostream_fairseq.data.manifest`: strict TSV reading and writing, id checks.
* :mod:`~echostream_fairseq.data.lexicon`: the words of the synthetic corpus's grammar and their tables.
* :mod:`~echostream_fairseq.data.morphology`: French spelling rules and numbers in both languages.
* :mod:`~echostream_fairseq.data.grammar`: the French -> English sentence templates of the synthetic corpus.
* :mod:`~echostream_fairseq.data.tts`: espeak-ng speech synthesis through ctypes.
* :mod:`~echostream_fairseq.data.corpus`: the three corpus sources (synthetic, CVSS, TSV).
* :mod:`~echostream_fairseq.data.text`: text normalisation and sentencepiece vocabularies.
* :mod:`~echostream_fairseq.data.kmeans`: seeded k-means in torch.
* :mod:`~echostream_fairseq.data.units`: discrete target units (log-mel or HuBERT + k-means).
* :mod:`~echostream_fairseq.data.steps`: resumable steps with parameter stamps.
* :mod:`~echostream_fairseq.data.pipeline`: what each preparation step writes, and the corpus statistics.
* :mod:`~echostream_fairseq.data.prep`: the preparation steps in order, with their parameters.

Nothing is imported here, so ``import echostream_fairseq.data.audio`` stays light.
"""
