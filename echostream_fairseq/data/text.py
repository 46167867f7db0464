"""Text normalisation and sentencepiece subword vocabularies.

Normalisation (the same for every corpus and both languages): Unicode NFKC, lower case, typographic
apostrophes made ASCII, hyphens and other punctuation replaced by spaces, apostrophes kept only
inside words (``l'homme``, ``mary's``), whitespace collapsed. Why: the subword targets are
predicted from speech (CTC heads, MT decoder), and speech carries neither case nor punctuation;
ASR-BLEU is scored on text without them too. The raw text is kept in ``text/{split}.tsv`` and
in the SimulEval references.

Subword models are sentencepiece unigram models trained on the train split with ids
``<s>=0, <pad>=1, </s>=2, <unk>=3``, fairseq's own order, so a piece's sentencepiece id equals
its index in the fairseq dictionary written next to it.

Words of subword text: a piece that starts with :data:`WORD_START` (``▁``) starts a word.
:func:`pieces_to_words` joins pieces into words; :func:`whole_word_prefix` says how much of a
growing piece sequence ends with a complete word (a word is complete once the next piece starts a
new one), which the simultaneous policy and the text agents use to write whole words only.
"""

from __future__ import annotations

import collections
import io
import os
import re
import unicodedata
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

import sentencepiece as spm

from echostream_fairseq.common.files import atomic_open
from echostream_fairseq.common.text import WORD_START

__all__ = [
    "NORMALIZER_VERSION",
    "WORD_START",
    "pieces_to_words",
    "whole_word_prefix",
    "split_complete_words",
    "edit_distance",
    "normalize_text",
    "train_sentencepiece",
    "encode_pieces",
    "write_fairseq_dict",
    "SPECIAL_PIECES",
]

NORMALIZER_VERSION = 1
SPECIAL_PIECES = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0..3, added by fairseq's Dictionary itself

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_NOT_WORD = re.compile(r"[^\w' ]+")  # \w is Unicode-aware: accented letters and digits stay
_LOOSE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")


def normalize_text(text: str) -> str:
    """Lower-cased text without punctuation (see the module docstring); may return ``""``."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    text = _NOT_WORD.sub(" ", text.replace("_", " "))
    text = _LOOSE_APOSTROPHE.sub(" ", text)
    return " ".join(text.split())


def train_sentencepiece(
    sentences: Sequence[str], model_dir: str, vocab_size: int, required_chars: Sequence[str] = ()
) -> spm.SentencePieceProcessor:
    """Train a unigram model on ``sentences``; writes ``spm.model`` and ``spm.vocab`` atomically.

    ``hard_vocab_limit=False`` lets a small corpus end up with fewer pieces than asked for instead
    of failing. Training is single-threaded and reads every sentence in order, so the same input
    gives the same model. ``required_chars`` become pieces even if ``sentences`` lack them (prep
    passes the characters of every split, so no text of the corpus encodes to ``<unk>``).

    Returns:
        The loaded model.
    """
    if not sentences:
        raise ValueError("cannot train a sentencepiece model on no sentences")
    os.makedirs(model_dir, exist_ok=True)
    # model_writer: the model comes back as bytes (no temporary files, no path recorded in it)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=buffer,
        vocab_size=int(vocab_size),
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        bos_id=0,
        pad_id=1,
        eos_id=2,
        unk_id=3,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        num_threads=1,
        minloglevel=2,
        required_chars="".join(required_chars),
    )
    model = spm.SentencePieceProcessor(model_proto=buffer.getvalue())
    model_path = os.path.join(model_dir, "spm.model")
    with atomic_open(os.path.join(model_dir, "spm.vocab")) as f:
        for piece_id in range(model.get_piece_size()):
            f.write(f"{model.id_to_piece(piece_id)}\t{model.get_score(piece_id):g}\n")
    with atomic_open(model_path, "wb") as f:
        f.write(buffer.getvalue())
    return spm.SentencePieceProcessor(model_file=model_path)


def encode_pieces(model: spm.SentencePieceProcessor, text: str) -> List[str]:
    """Sentencepiece pieces of already-normalised ``text``."""
    return model.encode(text, out_type=str)


def write_fairseq_dict(model: spm.SentencePieceProcessor, piece_sequences: Iterable[Sequence[str]], path: str) -> int:
    """Write a fairseq dictionary (``piece count`` per line, in sentencepiece id order).

    The four special symbols are left out: fairseq's ``Dictionary`` adds them itself, so a piece's
    line index + 4 is its sentencepiece id. Counts are the piece frequencies in
    ``piece_sequences`` (the train split); pieces never used there get count 0.

    Returns:
        The number of pieces written.
    """
    counts: Dict[str, int] = collections.Counter(p for pieces in piece_sequences for p in pieces)
    written = 0
    with atomic_open(path) as f:
        for piece_id in range(model.get_piece_size()):
            piece = model.id_to_piece(piece_id)
            if piece in SPECIAL_PIECES:
                continue
            f.write(f"{piece} {counts.get(piece, 0)}\n")
            written += 1
    return written


def pieces_to_words(dictionary, ids: Sequence[int]) -> List[str]:
    """Sentencepiece token ids -> words (pieces concatenated; ``▁`` starts a word; specials dropped)."""
    return dictionary.string(
        list(ids), "sentencepiece", extra_symbols_to_ignore={dictionary.unk(), dictionary.pad()}
    ).split()


def whole_word_prefix(tokens: Sequence[int], committed: int, starts_word: Callable[[int], bool]) -> int:
    """How many of ``tokens`` to keep so the text ends with a complete word.

    A word is complete once the token after it starts a new word, so the kept prefix ends just
    before the last word-starting token. Tokens already ``committed`` (written earlier) are kept.
    ``starts_word(token)`` tells whether a token's piece starts with :data:`WORD_START`.
    """
    for j in range(len(tokens) - 1, committed - 1, -1):
        if starts_word(tokens[j]):
            return max(j, committed)
    return committed


def split_complete_words(dictionary, pending: Sequence[int], finished: bool) -> Tuple[List[str], List[int]]:
    """Split subword ids not yet shown into complete words and the ids still open.

    A word is complete once a later subword starts a new word (or the text has ended), so the
    open part starts at the last word-starting subword (:func:`whole_word_prefix`, the policy's
    cut too). Only the pending ids are looked at: the cost does not grow with what came before.
    """
    if finished:
        return pieces_to_words(dictionary, pending), []
    cut = whole_word_prefix(pending, 0, lambda token: dictionary[token].startswith(WORD_START))
    return pieces_to_words(dictionary, pending[:cut]), list(pending[cut:])


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two sequences (substitution, insertion, deletion cost 1)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]
