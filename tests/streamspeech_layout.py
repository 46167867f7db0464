"""A corpus in StreamSpeech's exact layout, made from one of ours, for the compatibility tests.

StreamSpeech's ``preprocess_scripts`` write, under ``ROOT/fr-en/``: ``src_fbank80.zip`` (each
utterance's fbank as an uncompressed ``{id}.npy``) with ``gcmvn.npz``; ``fbank2unit/{split}.tsv``
(``id src_audio src_n_frames src_text tgt_text tgt_audio tgt_n_frames``, ``src_audio`` a byte range
``ZIP:OFFSET:LENGTH``, ``tgt_audio`` the units) beside the two YAML files copied from its
``configs/fr-en/``; ``src_unigram6000/`` and ``tgt_unigram6000/`` with ``{split}.tsv`` (``id
tgt_text``, the pieces) and the dictionary ``spm_unigram_fr.txt`` (both named after ``--lang fr``).
The YAMLs below are StreamSpeech's as it ships them (block style, three-space indents, its keys),
with its absolute paths as one variable.
"""

import io
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np

from echostream_fairseq.data.audio import fbank, read_audio
from echostream_fairseq.data.manifest import read_tsv

CONFIG_GCMVN = """global_cmvn:
  stats_npz_path: {root}/gcmvn.npz
input_channels: 1
input_feat_per_channel: 80
specaugment:
  freq_mask_F: 27
  freq_mask_N: 1
  time_mask_N: 1
  time_mask_T: 100
  time_mask_p: 1.0
  time_wrap_W: 0
transforms:
  '*':
  - global_cmvn
  _train:
  - global_cmvn
  - specaugment
vocoder:
  checkpoint: {root}/pretrain_models/mHuBERT.layer11.km1000.en/g_00500000
  config: {root}/pretrain_models/mHuBERT.layer11.km1000.en/config.json
  type: code_hifigan
"""


def _ctc_entry(name: str, folder: str, root: str) -> str:
    return f"""{name}:
   decoder_type: ctc
   dict: {root}/{folder}/spm_unigram_fr.txt
   data: {root}/{folder}
   loss_weight: 4.0
   rdrop_alpha: 0.0
   decoder_args:
      decoder_layers: 0
      decoder_embed_dim: 512
      decoder_ffn_embed_dim: 2048
      decoder_attention_heads: 8
   label_smoothing: 0.1
"""


def config_mtl(root: str) -> str:
    """``config_mtl_asr_st_ctcst.yaml`` as StreamSpeech ships it (no newline at the end)."""
    mt = f"""target_unigram:
   decoder_type: transformer
   dict: {root}/tgt_unigram6000/spm_unigram_fr.txt
   data: {root}/tgt_unigram6000
   loss_weight: 8.0
   rdrop_alpha: 0.0
   decoder_args:
      decoder_layers: 4
      decoder_embed_dim: 512
      decoder_ffn_embed_dim: 2048
      decoder_attention_heads: 8
   label_smoothing: 0.1
"""
    text = mt + _ctc_entry("source_unigram", "src_unigram6000", root)
    return text + _ctc_entry("ctc_target_unigram", "tgt_unigram6000", root).rstrip("\n")


def _stored_offsets(zip_path: Path) -> dict:
    """``name -> (offset, length)`` of each member's bytes (read from its local header)."""
    offsets = {}
    with zipfile.ZipFile(zip_path) as z, open(zip_path, "rb") as f:
        for info in z.infolist():
            f.seek(info.header_offset)
            header = f.read(30)
            name_length, extra_length = struct.unpack("<HH", header[26:30])
            offsets[info.filename] = (info.header_offset + 30 + name_length + extra_length, info.file_size)
    return offsets


def _features(corpus: Path, src_audio: str) -> np.ndarray:
    path = corpus / src_audio
    if path.suffix == ".npy":
        return np.load(path)
    return fbank(read_audio(path)).numpy()


def write_streamspeech_corpus(corpus: Path, root: Path, splits=("train", "dev", "test")) -> Path:
    """``corpus`` (``echostream-prep`` output) rewritten in StreamSpeech's layout under
    ``root/fr-en``; returns its ``fbank2unit`` folder (fairseq-train's data folder)."""
    base = root / "fr-en"
    unit_dir = base / "fbank2unit"
    unit_dir.mkdir(parents=True, exist_ok=True)
    zip_path = base / "src_fbank80.zip"
    manifests = {split: read_tsv(corpus / f"{split}.tsv", ("id", "src_audio", "tgt_audio")) for split in splits}
    n_frames = {}
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as z:
        for rows in manifests.values():
            for row in rows:
                features = _features(corpus, row["src_audio"]).astype(np.float32)
                n_frames[row["id"]] = features.shape[0]
                buffer = io.BytesIO()
                np.save(buffer, features)
                z.writestr(f"{row['id']}.npy", buffer.getvalue())
    offsets = _stored_offsets(zip_path)
    shutil.copy(corpus / "gcmvn.npz", base / "gcmvn.npz")
    columns = ("id", "src_audio", "src_n_frames", "src_text", "tgt_text", "tgt_audio", "tgt_n_frames")
    for split, rows in manifests.items():
        texts = {r["id"]: r for r in read_tsv(corpus / "text" / f"{split}.tsv", ("id", "src_text", "tgt_text"))}
        lines = ["\t".join(columns)]
        for row in rows:
            offset, length = offsets[f"{row['id']}.npy"]
            units = row["tgt_audio"]
            text = texts[row["id"]]
            fields = (
                row["id"],
                f"{zip_path}:{offset}:{length}",
                str(n_frames[row["id"]]),
                text["src_text"],
                text["tgt_text"],
            )
            lines.append("\t".join((*fields, units, str(len(units.split())))))
        (unit_dir / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for ours, theirs in (("src_unigram", "src_unigram6000"), ("tgt_unigram", "tgt_unigram6000")):
        (base / theirs).mkdir(exist_ok=True)
        shutil.copy(corpus / ours / "dict.txt", base / theirs / "spm_unigram_fr.txt")
        for split in splits:
            shutil.copy(corpus / ours / f"{split}.tsv", base / theirs / f"{split}.tsv")
    (unit_dir / "config_gcmvn.yaml").write_text(CONFIG_GCMVN.format(root=base), encoding="utf-8")
    (unit_dir / "config_mtl_asr_st_ctcst.yaml").write_text(config_mtl(str(base)), encoding="utf-8")
    return unit_dir
