"""Speech-to-unit dataset with text targets for the auxiliary tasks.

Reads fairseq's speech-to-speech manifest (``id, src_audio, src_n_frames, tgt_audio,
tgt_n_frames``, ``tgt_audio`` holding the target units as integers) and, per auxiliary task, a
``{split}.tsv`` of ``id, tgt_text`` (sentencepiece pieces joined by spaces). Source features are
80-dim kaldi fbank computed from the audio on the fly, or read from a ``.npy`` of ``[T, 80]`` or
from a byte range of a feature zip (``src_fbank80.zip:OFFSET:LENGTH``, as fairseq's and
StreamSpeech's preparation write them), then the config's feature transforms (global CMVN;
SpecAugment in training).

An example of several sentences (``echostream-prep concat``) has :data:`SENTENCE_MARK` between
them in its transcripts and, in the manifest's optional column ``last_sentence_frame``, the fbank
frame where the pause before its last sentence starts. Its CTC targets are the whole transcript;
its MT target and units are the last sentence's, and the model lets the MT decoder attend only to
the frames from ``last_sentence_frame`` on: the target side learns a sentence the encoder heard
after others, as long-form mode translates it after a sentence end.

Everything that can be checked without reading audio is checked when the split is loaded, so a bad
corpus fails before training starts, with the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np
import torch
from fairseq.data import Dictionary, FairseqDataset, data_utils
from torch import Tensor

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.common.text import WORD_START
from echostream_fairseq.data.audio import (
    AudioError,
    StoredFeatures,
    fbank,
    read_audio,
    read_stored_features,
    stored_features,
)
from echostream_fairseq.data.manifest import ManifestError, read_tsv

__all__ = [
    "TextTarget",
    "SpeechToUnitDataset",
    "load_text_target",
    "read_word_sentences",
    "MANIFEST_COLUMNS",
    "SENTENCE_MARK",
]

# where one sentence of a transcript ends and the next begins (``echostream-prep concat``); it is
# the dictionaries' end-of-sentence symbol, so a decoder target ends each sentence with it
SENTENCE_MARK = "</s>"

MANIFEST_COLUMNS = ("id", "src_audio", "src_n_frames", "tgt_audio", "tgt_n_frames")


@dataclass
class TextTarget:
    """One auxiliary task's targets: token ids per utterance id, already encoded.

    ``append_eos``: a decoder's target (teacher forcing starts from eos; of several sentences, the
    last).
    """

    name: str
    dictionary: Dictionary
    tokens: Dict[str, Tensor]
    append_eos: bool


def _encode(
    dictionary: Dictionary,
    text: str,
    where: str,
    sentence_ends: bool,
    last_only: bool = False,
    unknown_as_unk: bool = False,
) -> Tensor:
    """Pieces -> ids; the sentences between :data:`SENTENCE_MARK` s end with eos if ``sentence_ends``
    (a mark ending the text is allowed), else the marks are dropped; ``last_only``: the last sentence.
    A piece the dictionary lacks is refused, or with ``unknown_as_unk`` read as ``<unk>`` (fairseq's
    way)."""
    sentences: List[List[str]] = [[]]
    for tok in text.split():
        if tok == SENTENCE_MARK:
            sentences.append([])
        else:
            sentences[-1].append(tok)
    if len(sentences) > 1 and not sentences[-1]:
        sentences.pop()  # the text ends with a mark
    if not any(sentences):
        raise ManifestError(
            f"{where}: empty transcript (a CTC or decoder target needs a token; remove this id from the "
            "manifest and every task's TSV, as fairseq would otherwise train on an empty target)"
        )
    if not all(sentences):
        raise ManifestError(f"{where}: an empty sentence between {SENTENCE_MARK} marks")
    ids: List[int] = []
    for pieces in sentences[-1:] if last_only else sentences:
        sentence = [dictionary.index(tok) for tok in pieces]
        unknown = [tok for tok, i in zip(pieces, sentence) if i == dictionary.unk()]
        if unknown and not unknown_as_unk:
            raise ManifestError(
                f"{where}: tokens not in the dictionary: {unknown[:5]} (a dictionary written from another "
                "sentencepiece model? rebuild it from the one that wrote these pieces, or pass "
                "--unknown-pieces unk to read them as <unk>, as fairseq does)"
            )
        ids += sentence + ([dictionary.eos()] if sentence_ends else [])
    return torch.tensor(ids, dtype=torch.long)


def load_text_target(
    name: str,
    tsv: Path,
    dictionary: Dictionary,
    append_eos: bool,
    ids: Sequence[str],
    sentence_ends: bool = False,
    unknown_as_unk: bool = False,
) -> TextTarget:
    """Read ``tsv`` (``id, tgt_text``) and encode the rows whose ids the manifest has
    (``sentence_ends``: also a CTC target ends each sentence with eos; a decoder's always does).

    Raises :class:`ManifestError` naming the file and line for an empty transcript or unknown
    tokens, and naming both files for a manifest id the task file lacks.
    """
    rows = read_tsv(tsv, ("id", "tgt_text"))
    tokens: Dict[str, Tensor] = {}
    for row in rows:
        where = f"{tsv}:{row['_line']}"
        tokens[row["id"]] = _encode(
            dictionary, row["tgt_text"], where, append_eos or sentence_ends, append_eos, unknown_as_unk
        )
    missing = [i for i in ids if i not in tokens]
    if missing:
        raise ManifestError(f"{tsv}: no {name} text for ids of the manifest: {missing[:5]}")
    return TextTarget(name, dictionary, {i: tokens[i] for i in ids}, append_eos)


def read_word_sentences(tsv: Path) -> List[List[str]]:
    """The sentences of a task file (``id, tgt_text``) as words: pieces joined, ``▁`` starting a
    word, a row of several sentences split at its :data:`SENTENCE_MARK` s (a language model's text).

    Raises :class:`ManifestError` when the file is missing or holds no words.
    """
    if not Path(tsv).is_file():
        raise ManifestError(f"{tsv}: text for the language model not found")
    sentences: List[List[str]] = []
    for row in read_tsv(tsv, ("id", "tgt_text")):
        for text in row["tgt_text"].split(SENTENCE_MARK):
            words = "".join(text.split()).replace(WORD_START, " ").split()
            if words:
                sentences.append(words)
    if not sentences:
        raise ManifestError(f"{tsv}: no words for the language model")
    return sentences


class SpeechToUnitDataset(FairseqDataset):
    """Args:
    manifest: the split's ``{split}.tsv``.
    unit_dict: fairseq dictionary of unit ids (``"0" .. "K-1"``).
    text_targets: auxiliary targets keyed by task name.
    sample_rate: the rate the model's fbank expects; other rates are resampled.
    feature_transform: fairseq feature transform (CMVN, SpecAugment) or ``None``.
    shuffle: shuffle before sorting by length (training).
    """

    def __init__(
        self,
        manifest: Path,
        unit_dict: Dictionary,
        text_targets: Dict[str, TextTarget],
        sample_rate: int = SAMPLE_RATE,
        input_feat_per_channel: int = 80,
        feature_transform=None,
        shuffle: bool = False,
    ) -> None:
        manifest = Path(manifest)
        rows = read_tsv(manifest, MANIFEST_COLUMNS)
        self.manifest, self.unit_dict = manifest, unit_dict
        self.ids: List[str] = []
        self.audio: List[Union[Path, StoredFeatures]] = []
        self.n_frames: List[int] = []
        self.units: List[Tensor] = []
        self.lines: List[int] = []
        starts: List[int] = []
        for row in rows:
            where = f"{manifest}:{row['_line']}"
            try:
                n_frames = int(row["src_n_frames"])
            except ValueError:
                raise ManifestError(f"{where}: src_n_frames must be an integer, got {row['src_n_frames']!r}") from None
            if n_frames < 1:
                raise ManifestError(f"{where}: src_n_frames must be positive, got {n_frames}")
            units = self._encode_units(row["tgt_audio"], where)
            start = row.get("last_sentence_frame") or "0"
            if not start.isdigit() or int(start) >= n_frames:
                raise ManifestError(
                    f"{where}: last_sentence_frame must be a frame of the source (0 <= frame < "
                    f"{n_frames}), got {start!r}"
                )
            starts.append(int(start))
            audio = stored_features(row["src_audio"], manifest.parent) or Path(row["src_audio"])
            self.ids.append(row["id"])
            if isinstance(audio, Path) and not audio.is_absolute():
                audio = manifest.parent / audio
            self.audio.append(audio)
            self.n_frames.append(n_frames)
            self.units.append(units)
            self.lines.append(row["_line"])
        if not self.ids:
            raise ManifestError(f"{manifest}: no utterances")
        # None: single sentences only (net_input keeps fairseq's usual keys)
        self.last_sentence_frames = starts if any(starts) else None
        self.text_targets = text_targets
        self.sample_rate = sample_rate
        self.input_feat_per_channel = input_feat_per_channel
        self.feature_transform = feature_transform
        self.shuffle = shuffle
        self.sizes = np.array(self.n_frames, dtype=np.int64)
        self.tgt_sizes = np.array([len(u) for u in self.units], dtype=np.int64)

    def _encode_units(self, text: str, where: str) -> Tensor:
        fields = text.split()
        if not fields:
            raise ManifestError(f"{where}: empty unit sequence in tgt_audio")
        ids = []
        for u in fields:
            i = self.unit_dict.index(u)
            if i == self.unit_dict.unk() or not u.isdigit():
                raise ManifestError(
                    f"{where}: unit {u!r} is outside the unit dictionary "
                    f"({len(self.unit_dict) - self.unit_dict.nspecial} units)"
                )
            ids.append(i)
        return torch.tensor(ids, dtype=torch.long)

    # -- items ---------------------------------------------------------------------------------

    def features(self, index: int) -> Tensor:
        """Source features ``[T, C]`` after the feature transforms."""
        path = self.audio[index]
        where = f"{self.manifest}:{self.lines[index]} ({path if isinstance(path, Path) else path.zip_path.name})"
        if isinstance(path, StoredFeatures) or path.suffix == ".npy":
            if isinstance(path, StoredFeatures):
                try:
                    feats = read_stored_features(path)
                except AudioError as e:
                    raise AudioError(f"{self.manifest}:{self.lines[index]}: {e}") from None
            elif not path.is_file():
                raise AudioError(f"{where}: feature file not found")
            else:
                feats = np.load(path)
            if feats.ndim != 2 or feats.shape[1] != self.input_feat_per_channel:
                raise AudioError(
                    f"{where}: features must be [frames, {self.input_feat_per_channel}], got {feats.shape}"
                )
        else:
            try:
                wav = read_audio(path, sample_rate=self.sample_rate)
            except AudioError as e:
                raise AudioError(f"{self.manifest}:{self.lines[index]}: {e}") from None
            feats = fbank(wav, self.sample_rate, self.input_feat_per_channel).numpy()
        if self.feature_transform is not None:
            feats = self.feature_transform(feats)
        return torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))

    def __getitem__(self, index: int) -> Dict[str, object]:
        key = self.ids[index]
        return {
            "index": index,
            "source": self.features(index),
            "target": self.units[index],
            "multitask": {name: t.tokens[key] for name, t in self.text_targets.items()},
        }

    def __len__(self) -> int:
        return len(self.ids)

    # -- batching ------------------------------------------------------------------------------

    def collater(self, samples: List[Dict[str, object]]) -> Dict[str, object]:
        """Pad a list of items into fairseq's sample dict (``net_input``, ``target``, ``multitask``)."""
        if len(samples) == 0:
            return {}
        index = torch.tensor([s["index"] for s in samples], dtype=torch.long)
        sources = [s["source"] for s in samples]
        src_lengths = torch.tensor([x.size(0) for x in sources], dtype=torch.long)
        src_tokens = sources[0].new_zeros(len(sources), int(src_lengths.max()), sources[0].size(1))
        for b, x in enumerate(sources):
            src_tokens[b, : x.size(0)] = x
        pad = self.unit_dict.pad()
        target = data_utils.collate_tokens([s["target"] for s in samples], pad)
        target_lengths = torch.tensor([len(s["target"]) for s in samples], dtype=torch.long)
        multitask = {}
        prev_output_tokens = None
        for name, t in self.text_targets.items():
            toks = [s["multitask"][name] for s in samples]
            d = t.dictionary
            entry = {
                "target": data_utils.collate_tokens(toks, d.pad()),
                "target_lengths": torch.tensor([len(x) for x in toks], dtype=torch.long),
            }
            if t.append_eos:  # teacher forcing input: eos then the tokens, fairseq's convention
                entry["prev_output_tokens"] = data_utils.collate_tokens(
                    toks, d.pad(), d.eos(), move_eos_to_beginning=True
                )
                prev_output_tokens = entry["prev_output_tokens"]
            entry["ntokens"] = int(entry["target_lengths"].sum())
            multitask[name] = entry
        net_input = {"src_tokens": src_tokens, "src_lengths": src_lengths}
        if self.last_sentence_frames is not None:
            net_input["last_sentence_frame"] = torch.tensor(
                [self.last_sentence_frames[s["index"]] for s in samples], dtype=torch.long
            )
        if prev_output_tokens is not None:
            net_input["prev_output_tokens"] = prev_output_tokens
        return {
            "id": index,
            "net_input": net_input,
            "target": target,
            "target_lengths": target_lengths,
            "ntokens": int(target_lengths.sum()),
            "nsentences": len(samples),
            "multitask": multitask,
        }

    def num_tokens(self, index: int) -> int:
        return int(self.sizes[index])

    def num_tokens_vec(self, indices: np.ndarray) -> np.ndarray:
        return self.sizes[indices]

    def batch_by_size(self, indices, max_tokens=None, max_sentences=None, required_batch_size_multiple=1):
        """Batches of at most ``max_tokens`` source frames; the last, smaller batch is kept.

        (The installed fairseq drops a last batch that is not a multiple of
        ``required_batch_size_multiple``, which would silently skip utterances in validation and
        decoding.)
        """
        from fairseq.data.data_utils_fast import batch_by_size_vec

        indices = np.asarray(indices, dtype=np.int64)
        return batch_by_size_vec(
            indices,
            self.sizes[indices].astype(np.int64),
            int(max_tokens) if max_tokens is not None else -1,
            max_sentences if max_sentences is not None else -1,
            required_batch_size_multiple,
        )

    def size(self, index: int):
        return int(self.sizes[index]), int(self.tgt_sizes[index])

    def ordered_indices(self) -> np.ndarray:
        order = [np.random.permutation(len(self))] if self.shuffle else [np.arange(len(self))]
        order.append(-self.sizes)  # longest first, fairseq's speech convention
        return np.lexsort(order)

    @property
    def supports_prefetch(self) -> bool:
        return False

    def id_of(self, index: int) -> str:
        return self.ids[index]
