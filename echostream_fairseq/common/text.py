"""The subword convention every part shares: sentencepiece marks the first piece of a word."""

__all__ = ["WORD_START"]

WORD_START = "\u2581"  # sentencepiece's "▁": the piece starts a word
