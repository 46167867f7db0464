"""The three corpus sources of ``echostream-prep``, read into one list of utterances per split.

* :func:`synthetic_corpus`: sentences from :mod:`~echostream_fairseq.data.grammar`, a seeded source
  voice per utterance (audio is synthesised later, by the audio step).
* :func:`cvss_corpus`: Common Voice French clips + transcripts and CVSS-C fr-en translations and
  target speech.
* :func:`tsv_corpus`: one TSV per split with ``id, src_audio, src_text, tgt_text, tgt_audio``.

Readers check everything that can be checked without decoding audio (files exist, ids unique and
usable as file names, transcripts non-empty after normalisation) and raise
:class:`~echostream_fairseq.data.manifest.ManifestError` naming the file and line. Decoding errors
surface in the audio step, named the same way.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence

from echostream_fairseq.data.grammar import GRAMMAR_VERSION, sample_splits
from echostream_fairseq.data.manifest import ManifestError, read_tsv
from echostream_fairseq.data.text import normalize_text
from echostream_fairseq.data.tts import GENERATED_VOICES, QUALITY_VOICES, SOURCE_LANGUAGE, SOURCE_VOICES, Voice

__all__ = [
    "SPLITS",
    "Utterance",
    "Corpus",
    "synthetic_corpus",
    "cvss_corpus",
    "tsv_corpus",
    "TSV_COLUMNS",
    "source_voice",
    "HELD_OUT_SPLIT",
    "ROOM_SPLIT",
    "with_rooms",
    "DEFAULT_HELD_OUT_VOICES",
]

SPLITS = ("train", "dev", "test")
TSV_COLUMNS = ("id", "src_audio", "src_text", "tgt_text", "tgt_audio")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=@,-]*$")
# rates (words per minute) and base pitch (0..100) drawn per synthetic source utterance
SOURCE_RATE_RANGE = (135, 205)
SOURCE_PITCH_RANGE = (35, 65)
SOURCE_PITCH_SPREAD_RANGE = (35, 75)
# The held-out-voice test split: the test sentences again, spoken only by source voice variants that
# no train, dev or test utterance uses. Same sentences, so its scores differ from test's by the
# voices alone. By default one male and one female variant whose pitch bands sit inside the
# training voices' range are held out: a model must generalise to them, not extrapolate.
HELD_OUT_SPLIT = "test_heldout"
# the test sentences again, their source speech in simulated rooms with noise (echostream-prep --test-room)
ROOM_SPLIT = "test_room"
DEFAULT_HELD_OUT_VOICES = ("es-crisp", "es-breathy")


@dataclass
class Utterance:
    """One parallel utterance.

    Attributes:
        id: unique across all splits; used as the audio file name.
        split: ``train`` | ``dev`` | ``test``.
        src_text, tgt_text: raw French and English text (normalised later, for subwords).
        src_audio, tgt_audio: input audio paths (``None`` for synthetic: synthesised).
        src_voice: the synthetic source voice.
        where: ``"file:line"`` that defined the utterance, for error messages.
        room: ``"training"`` or ``"test"``: its source speech is put in a simulated room of those
            ranges (:mod:`~echostream_fairseq.data.rooms`); ``None``: as recorded or synthesised.
    """

    id: str
    split: str
    src_text: str
    tgt_text: str
    src_audio: Optional[str] = None
    tgt_audio: Optional[str] = None
    src_voice: Optional[Voice] = None
    where: str = ""
    room: Optional[str] = None


@dataclass
class Corpus:
    """Utterances per split plus ``fingerprint``: what identifies the inputs (recorded in stamps)."""

    mode: str
    splits: Dict[str, List[Utterance]]
    fingerprint: Dict[str, Any] = field(default_factory=dict)

    def all(self) -> List[Utterance]:
        return [u for split in self.splits.values() for u in split]


def source_voice(seed: int, utterance_id: str, variants: Sequence[str] = SOURCE_VOICES) -> Voice:
    """The synthetic source voice of one utterance: a function of (seed, id, variants) only."""
    rng = random.Random(f"{seed}:{utterance_id}")  # str seeds hash with sha512: stable across runs
    return Voice(
        SOURCE_LANGUAGE,
        rng.choice(list(variants)),
        rate=rng.randint(*SOURCE_RATE_RANGE),
        pitch=rng.randint(*SOURCE_PITCH_RANGE),
        pitch_range=rng.randint(*SOURCE_PITCH_SPREAD_RANGE),
    )


def _split_voices(held_out: Sequence[str], extra: Sequence[str] = ()) -> tuple:
    """(voices of train/dev/test, held-out voices), checked; ``extra`` joins the former."""
    unknown = [v for v in held_out if v not in SOURCE_VOICES]
    if unknown:
        raise ManifestError(f"--held-out-voices: unknown voice variant(s) {unknown}; known: {list(SOURCE_VOICES)}")
    held = tuple(dict.fromkeys(held_out))
    kept = tuple(v for v in SOURCE_VOICES if v not in held) + tuple(extra)
    if not kept:
        raise ManifestError("--held-out-voices holds out every voice variant: train would have no voice left")
    return kept, held


def synthetic_corpus(
    seed: int,
    sizes: Dict[str, int],
    held_out_voices: Sequence[str] = (),
    extra_voices: int = 0,
    extra_voice_qualities: bool = False,
) -> Corpus:
    """Sentences drawn from the grammar (distinct across splits) with seeded source voices.

    With ``held_out_voices``, train/dev/test use the other variants only, and a further split
    :data:`HELD_OUT_SPLIT` holds the test sentences spoken by the held-out variants. With
    ``extra_voices`` = N, train/dev/test also use the first N generated voices
    (:data:`~echostream_fairseq.data.tts.GENERATED_VOICES`, or with ``extra_voice_qualities``
    those of :data:`~echostream_fairseq.data.tts.QUALITY_VOICES`); the held-out split never does,
    so its audio does not depend on them.
    """
    for split, n in sizes.items():
        if n < 1:
            raise ManifestError(f"--num-{split} must be at least 1, got {n}")
    if not 0 <= extra_voices <= len(GENERATED_VOICES):
        raise ManifestError(f"--extra-voices must be between 0 and {len(GENERATED_VOICES)}, got {extra_voices}")
    extra = (QUALITY_VOICES if extra_voice_qualities else GENERATED_VOICES)[:extra_voices]
    voices, held = _split_voices(held_out_voices, extra)
    sentences = sample_splits(seed, sizes)
    splits = {
        split: [
            Utterance(
                f"{split}_{i:05d}",
                split,
                s.fr,
                s.en,
                src_voice=source_voice(seed, f"{split}_{i:05d}", voices),
                where=f"synthetic {split} #{i}",
            )
            for i, s in enumerate(sentences[split])
        ]
        for split in sizes
    }
    if held:
        if "test" not in sizes:
            raise ManifestError("--held-out-voices needs a test split: the held-out split repeats its sentences")
        splits[HELD_OUT_SPLIT] = [
            Utterance(
                f"{HELD_OUT_SPLIT}_{i:05d}",
                HELD_OUT_SPLIT,
                u.src_text,
                u.tgt_text,
                src_voice=source_voice(seed, f"{HELD_OUT_SPLIT}_{i:05d}", held),
                where=f"synthetic {HELD_OUT_SPLIT} #{i}",
            )
            for i, u in enumerate(splits["test"])
        ]
    fingerprint = {
        "seed": seed,
        "sizes": dict(sizes),
        "grammar_version": GRAMMAR_VERSION,
        "voices": [SOURCE_RATE_RANGE, SOURCE_PITCH_RANGE, SOURCE_PITCH_SPREAD_RANGE, list(SOURCE_VOICES)],
    }
    if held:
        fingerprint["held_out_voices"] = list(held)
    if extra:
        fingerprint["extra_voices"] = list(extra)
    return Corpus("synthetic", splits, fingerprint)


def _unit_interval(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` (the same on every machine)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little") / 2**64


def with_rooms(corpus: Corpus, share: float, test_room: bool) -> Corpus:
    """``corpus`` with a ``share`` of its training utterances (chosen by their ids) marked to be put
    in a training room, and with ``test_room``, a :data:`ROOM_SPLIT` split: the test utterances
    again (their text and source audio or voice), marked for a test room."""
    if not 0.0 <= share <= 1.0:
        raise ManifestError(f"--rooms is the share of training utterances put in a room: 0 to 1, got {share:g}")
    if share == 0 and not test_room:
        return corpus
    splits = {}
    for split, utterances in corpus.splits.items():
        if split == "train":
            utterances = [
                replace(u, room="training") if _unit_interval(f"echostream-room-share:{u.id}") < share else u
                for u in utterances
            ]
        splits[split] = utterances
    if test_room:
        if "test" not in splits:
            raise ManifestError("--test-room needs a test split: the room split repeats its utterances")
        splits[ROOM_SPLIT] = [
            replace(u, id=f"{ROOM_SPLIT}_{i:05d}", split=ROOM_SPLIT, room="test", where=f"{u.where} (in a room)")
            for i, u in enumerate(splits["test"])
        ]
    fingerprint = {**corpus.fingerprint, "rooms": {"share": share, "test_room": test_room}}
    return Corpus(corpus.mode, splits, fingerprint)


def _check_id(uid: str, where: str) -> None:
    if not _SAFE_ID.match(uid):
        raise ManifestError(
            f"{where}: id {uid!r} cannot be used as a file name "
            "(letters, digits and _ . + = @ , - only, not starting with . or -)"
        )


def _check_text(text: str, where: str, column: str) -> None:
    if not normalize_text(text):
        raise ManifestError(
            f"{where}: empty transcript in column {column!r} (nothing left after removing punctuation: {text!r})"
        )
    if any(c in text for c in "\r\n"):
        raise ManifestError(f"{where}: transcript in column {column!r} holds a line break")


def _check_audio_exists(path: str, where: str, what: str) -> None:
    if not os.path.isfile(path):
        raise ManifestError(f"{where}: {what} audio file not found: {path}")


def _check_unique_ids(splits: Dict[str, List[Utterance]]) -> None:
    seen: Dict[str, str] = {}
    for utterances in splits.values():
        for u in utterances:
            if u.id in seen:
                raise ManifestError(f"{u.where}: duplicate id {u.id!r} (also at {seen[u.id]})")
            seen[u.id] = u.where


def _files_fingerprint(paths: Sequence[str]) -> str:
    """Hash of (path, size, mtime) of input files: changes when any input file changes."""
    h = hashlib.sha256()
    for path in paths:
        st = os.stat(path)
        h.update(f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _text_fingerprint(paths: Sequence[str]) -> str:
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:16]


def tsv_corpus(split_files: Dict[str, str]) -> Corpus:
    """Read one TSV per split (header ``id, src_audio, src_text, tgt_text, tgt_audio``).

    Audio paths are absolute or relative to the TSV's folder.
    """
    if "train" not in split_files:
        raise ManifestError("a train split is required (--train): the vocabularies, CMVN and units are trained on it")
    splits: Dict[str, List[Utterance]] = {}
    for split, path in split_files.items():
        rows = read_tsv(path, TSV_COLUMNS)
        if not rows:
            raise ManifestError(f"{path}: no utterances")
        base = os.path.dirname(os.path.abspath(path))
        utterances = []
        for row in rows:
            where = f"{path}:{row['_line']}"
            _check_id(row["id"], where)
            _check_text(row["src_text"], where, "src_text")
            _check_text(row["tgt_text"], where, "tgt_text")
            src = os.path.join(base, row["src_audio"])
            tgt = os.path.join(base, row["tgt_audio"])
            _check_audio_exists(src, where, "source")
            _check_audio_exists(tgt, where, "target")
            utterances.append(Utterance(row["id"], split, row["src_text"], row["tgt_text"], src, tgt, where=where))
        splits[split] = utterances
    _check_unique_ids(splits)
    audio = [p for us in splits.values() for u in us for p in (u.src_audio, u.tgt_audio)]
    fingerprint = {
        "tsv": {split: os.path.abspath(p) for split, p in split_files.items()},
        "tsv_content": _text_fingerprint(list(split_files.values())),
        "audio_files": _files_fingerprint(audio),
    }
    return Corpus("tsv", splits, fingerprint)


# Common Voice transcripts may sit in any of these; CVSS splits follow CoVoST 2, not Common Voice
_CV_TSVS = ("train", "dev", "test", "validated", "invalidated", "other")


def cvss_corpus(cv_root: str, cvss_root: str, splits: Sequence[str] = SPLITS) -> Corpus:
    """Join CVSS-C (``{split}.tsv``: clip, translation; ``{split}/{clip}.wav``) with Common Voice
    (``clips/{clip}``; transcripts in ``{train,dev,test,validated,...}.tsv``: ``path``, ``sentence``).

    Utterance ids are the clip names without extension.
    """
    if "train" not in splits:
        raise ManifestError("--splits must include train: the vocabularies, CMVN and units are trained on it")
    for root, flag in ((cv_root, "--cv-root"), (cvss_root, "--cvss-root")):
        if not os.path.isdir(root):
            raise ManifestError(f"{root}: {flag} folder not found")
    transcripts: Dict[str, tuple] = {}
    cv_files = [
        os.path.join(cv_root, f"{name}.tsv")
        for name in _CV_TSVS
        if os.path.isfile(os.path.join(cv_root, f"{name}.tsv"))
    ]
    if not cv_files:
        raise ManifestError(f"{cv_root}: no Common Voice transcript files ({', '.join(n + '.tsv' for n in _CV_TSVS)})")
    for cv_file in cv_files:
        for row in read_tsv(cv_file, ("path", "sentence"), id_column="path", allow_empty=("sentence",)):
            clip = row["path"]
            where = f"{cv_file}:{row['_line']}"
            previous = transcripts.get(clip)
            if previous and unicodedata.normalize("NFC", previous[0]) != unicodedata.normalize("NFC", row["sentence"]):
                raise ManifestError(f"{where}: clip {clip!r} has a different sentence than at {previous[1]}")
            if not previous:
                transcripts[clip] = (row["sentence"], where)

    out: Dict[str, List[Utterance]] = {}
    cvss_files = []
    for split in splits:
        cvss_file = os.path.join(cvss_root, f"{split}.tsv")
        cvss_files.append(cvss_file)
        rows = read_tsv(cvss_file, ("clip", "translation"), header=("clip", "translation"), id_column="clip")
        if not rows:
            raise ManifestError(f"{cvss_file}: no utterances")
        utterances = []
        for row in rows:
            where = f"{cvss_file}:{row['_line']}"
            clip = row["clip"]
            if clip not in transcripts:
                raise ManifestError(f"{where}: clip {clip!r} has no transcript in the Common Voice files {cv_files}")
            sentence, cv_where = transcripts[clip]
            _check_text(sentence, cv_where, "sentence")
            _check_text(row["translation"], where, "translation")
            uid = os.path.splitext(clip)[0]
            _check_id(uid, where)
            src = os.path.join(cv_root, "clips", clip)
            tgt = os.path.join(cvss_root, split, clip + ".wav")
            _check_audio_exists(src, where, "source (Common Voice)")
            _check_audio_exists(tgt, where, "target (CVSS)")
            utterances.append(Utterance(uid, split, sentence, row["translation"], src, tgt, where=where))
        out[split] = utterances
    _check_unique_ids(out)
    audio = [p for us in out.values() for u in us for p in (u.src_audio, u.tgt_audio)]
    fingerprint = {
        "cv_root": os.path.abspath(cv_root),
        "cvss_root": os.path.abspath(cvss_root),
        "splits": list(splits),
        "tsv_content": _text_fingerprint(cv_files + cvss_files),
        "audio_files": _files_fingerprint(audio),
    }
    return Corpus("cvss", out, fingerprint)
