"""Evaluation helpers that do not need the translation model.

:mod:`echostream_fairseq.evaluation.asr` holds an offline English speech recogniser (pocketsphinx
with a bigram language model counted from our own English text), used to measure how intelligible
synthesised or vocoded speech is (word error rate) and, later, ASR-BLEU.
"""
