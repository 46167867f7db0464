"""Evaluation helpers that do not need the translation model.

Modules, one concept each:

* :mod:`~echostream_fairseq.evaluation.pocketsphinx_model`: the pocketsphinx package and the
  English model files its wheel ships.
* :mod:`~echostream_fairseq.evaluation.lm`: a word bigram language model counted from our own
  English text, written as ARPA.
* :mod:`~echostream_fairseq.evaluation.pronunciations`: the CMU pronunciations of those words.
* :mod:`~echostream_fairseq.evaluation.recognizer`: the offline English speech recogniser
  (pocketsphinx with that LM and dictionary), used to measure how intelligible synthesised or
  vocoded speech is.
* :mod:`~echostream_fairseq.evaluation.wer`: word error rate, of transcripts or of audio files.
* :mod:`~echostream_fairseq.evaluation.transcribers`: the recognisers ASR-BLEU can use
  (pocketsphinx, whisper, wav2vec2).
* :mod:`~echostream_fairseq.evaluation.asr_bleu`: ASR-BLEU, and its SimulEval quality scorer.
* :mod:`~echostream_fairseq.evaluation.simuleval_compat`: a fix for SimulEval's
  computation-aware latency of speech output.
"""
