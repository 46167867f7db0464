"""The two YAML files a corpus carries: the data config and the multitask config.

``config.yaml`` (fairseq's speech-to-text style)::

    input_feat_per_channel: 80
    input_channels: 1
    sample_rate: 16000
    global_cmvn: {stats_npz_path: gcmvn.npz}
    specaugment: {freq_mask_F: 27, freq_mask_N: 1, time_mask_N: 1, time_mask_T: 40, ...}
    transforms: {'*': [global_cmvn], _train: [global_cmvn, specaugment]}
    units: {kmeans: units/kmeans.pt, num_units: 200, dict: units/dict.txt}

``config_multitask.yaml`` (fairseq's speech-to-speech multitask style): one entry per auxiliary
task, named after its role as in StreamSpeech::

    source_unigram:     {decoder_type: ctc, dict: src_unigram/dict.txt, data: src_unigram, loss_weight: 4.0}
    ctc_target_unigram: {decoder_type: ctc, dict: tgt_unigram/dict.txt, data: tgt_unigram, loss_weight: 4.0}
    target_unigram:     {decoder_type: transformer, dict: tgt_unigram/dict.txt, data: tgt_unigram,
                         loss_weight: 8.0, label_smoothing: 0.1, decoder_args: {decoder_layers: 4}}

Relative paths are resolved against the YAML file's folder, so a corpus folder can be moved.
Every error names the file and, where it comes from one, the line.

StreamSpeech's multitask YAML (``config_mtl_asr_st_ctcst.yaml``) loads unchanged: its MT
``decoder_args`` map to ours; what means nothing here (``rdrop_alpha: 0``, a CTC entry's
``label_smoothing``, and the ``decoder_args`` of its CTC entries, which StreamSpeech's CTC heads do
not read: our heads' layers are model flags) is listed in :attr:`MultitaskConfig.ignored`, which
the task reports in one warning. What would change the training is refused (``rdrop_alpha`` > 0:
no R-Drop here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.common.units_kind import UnitsKind
from echostream_fairseq.data.units import load_unit_model, units_kind_of
from echostream_fairseq.models.echostream import DECODER_ARGS

__all__ = [
    "ConfigError",
    "DataConfig",
    "MultitaskEntry",
    "MultitaskConfig",
    "MULTITASK_ROLES",
    "load_yaml_with_lines",
]

# task name -> (decoder type, what it does)
MULTITASK_ROLES: Dict[str, Tuple[str, str]] = {
    "source_unigram": ("ctc", "ASR CTC head: source subwords from the encoder"),
    "ctc_target_unigram": ("ctc", "ST CTC head: target subwords from the encoder"),
    "target_unigram": ("transformer", "MT decoder: autoregressive target subwords"),
}


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file (and line)."""


def load_yaml_with_lines(path: Path) -> Tuple[Dict[str, Any], Dict[str, int]]:
    """Parse a YAML mapping; also return the 1-based line of each top-level key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping at the top level, got {type(data).__name__}")
    lines = {}
    if isinstance(node, yaml.MappingNode):
        lines = {k.value: k.start_mark.line + 1 for k, _ in node.value}
    return data, lines


def _resolve(root: Path, value: Optional[str]) -> Optional[Path]:
    if value is None:
        return None
    p = Path(value)
    return p if p.is_absolute() else root / p


@dataclass
class DataConfig:
    """``config.yaml``: features, normalisation, augmentation and the unit inventory."""

    path: Path
    input_feat_per_channel: int = 80
    input_channels: int = 1
    sample_rate: int = SAMPLE_RATE
    global_cmvn_stats: Optional[Path] = None
    specaugment: Dict[str, Any] = field(default_factory=dict)
    transforms: Dict[str, Any] = field(default_factory=dict)
    units: Dict[str, Any] = field(default_factory=dict)
    raw: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path) -> "DataConfig":
        path = Path(path)
        data, lines = load_yaml_with_lines(path)
        root = path.parent

        def need_int(key: str, default: int) -> int:
            value = data.get(key, default)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{path}:{lines.get(key, 1)}: {key} must be a positive integer, got {value!r}")
            return value

        cmvn = data.get("global_cmvn") or {}
        stats = _resolve(root, cmvn.get("stats_npz_path")) if isinstance(cmvn, dict) else None
        # fairseq spells the key "feature_transforms" in newer configs and "transforms" in older ones
        transforms = data.get("feature_transforms") or data.get("transforms") or {}
        for split, names in transforms.items():
            for name in names or []:
                if name not in ("global_cmvn", "specaugment", "utterance_cmvn"):
                    raise ConfigError(
                        f"{path}:{lines.get('transforms', lines.get('feature_transforms', 1))}: "
                        f"unknown feature transform {name!r}"
                    )
                if name == "global_cmvn" and (stats is None or not stats.is_file()):
                    raise ConfigError(
                        f"{path}:{lines.get('global_cmvn', lines.get('transforms', 1))}: "
                        f"global_cmvn stats file not found: {stats}"
                    )
        units = dict(data.get("units") or {})
        for key in ("kmeans", "dict"):
            if units.get(key) is not None:
                units[key] = _resolve(root, units[key])
        return cls(
            path=path,
            input_feat_per_channel=need_int("input_feat_per_channel", 80),
            input_channels=need_int("input_channels", 1),
            sample_rate=need_int("sample_rate", SAMPLE_RATE),
            global_cmvn_stats=stats,
            specaugment=dict(data.get("specaugment") or {}),
            transforms=transforms,
            units=units,
            raw=data,
        )

    def units_kind(self) -> Optional[UnitsKind]:
        """The kind of the units (``units: kind:``, or the unit model ``units: kmeans:`` names);
        ``None`` when the config does not say (StreamSpeech's, without ``units:``)."""
        record = self.units.get("kind")
        if record is not None:
            if not isinstance(record, dict):
                raise ConfigError(f"{self.path}: units kind must be a mapping (extractor, num_units, ...)")
            try:
                return UnitsKind.from_dict(record, str(self.path))
            except ValueError as e:
                raise ConfigError(str(e)) from None
        kmeans = self.units.get("kmeans")
        if kmeans is not None and Path(kmeans).is_file():
            return units_kind_of(load_unit_model(str(kmeans)))
        return None

    def transform_names(self, is_train: bool) -> List[str]:
        """The names of the feature transforms a split applies (in training ``_train``'s, else ``*``'s)."""
        names = self.transforms.get("_train") if is_train else None
        return list(names if names is not None else self.transforms.get("*") or [])

    def feature_transforms(self, is_train: bool):
        """fairseq's composite feature transform for a split (``_train`` names apply in training)."""
        from fairseq.data.audio.feature_transforms import CompositeAudioFeatureTransform

        names = self.transform_names(is_train)
        if not names:
            return None
        cfg: Dict[str, Any] = {"feature_transforms": names}
        if self.global_cmvn_stats is not None:
            cfg["global_cmvn"] = {"stats_npz_path": str(self.global_cmvn_stats)}
        cfg["specaugment"] = self.specaugment
        return CompositeAudioFeatureTransform.from_config_dict(cfg)


@dataclass
class MultitaskEntry:
    """One auxiliary task: its decoder, dictionary, per-task TSV folder and loss weight."""

    name: str
    decoder_type: str
    dict_path: Path
    data_dir: Path
    loss_weight: float
    label_smoothing: float = 0.0
    decoder_args: Dict[str, Any] = field(default_factory=dict)
    line: int = 1


# the keys of a multitask entry; StreamSpeech's rdrop_alpha is read only to be refused or ignored
ENTRY_KEYS = ("decoder_type", "dict", "data", "loss_weight", "label_smoothing", "decoder_args", "rdrop_alpha")


def _meaning_nothing(name: str, entry: Dict[str, Any], decoder_type: str, where: str) -> Tuple[List[str], Dict]:
    """StreamSpeech's keys of an entry that mean nothing here (``name.key`` each), and the
    ``decoder_args`` that apply."""
    ignored: List[str] = []
    rdrop = entry.get("rdrop_alpha")
    if rdrop is not None:
        if float(rdrop) != 0.0:
            raise ConfigError(f"{where}: {name} rdrop_alpha {rdrop}: R-Drop is not implemented here; set it to 0")
        ignored.append(f"{name}.rdrop_alpha")
    decoder_args = dict(entry.get("decoder_args") or {})
    if decoder_type == "ctc":
        if "label_smoothing" in entry:
            ignored.append(f"{name}.label_smoothing (a CTC loss is not smoothed)")
        # StreamSpeech's form: the MT decoder's sizes repeated on its CTC entries, which its CTC
        # heads never read; applying its decoder_layers: 0 would change our ST CTC head. Only that
        # form is ignored: any other key is refused below
        extra = set(decoder_args) - set(DECODER_ARGS[name])
        if extra and set(decoder_args) <= set(DECODER_ARGS["target_unigram"]):
            ignored += [f"{name}.decoder_args.{key}" for key in sorted(decoder_args)]
            decoder_args = {}
    return ignored, decoder_args


@dataclass
class MultitaskConfig:
    """``config_multitask.yaml``: the ASR CTC, ST CTC and MT tasks (all three are required).

    ``ignored``: StreamSpeech's keys found that mean nothing here (see the module docstring)."""

    path: Path
    tasks: Dict[str, MultitaskEntry]
    ignored: List[str] = field(default_factory=list)

    @classmethod
    def load(cls, path) -> "MultitaskConfig":
        path = Path(path)
        data, lines = load_yaml_with_lines(path)
        root = path.parent
        tasks: Dict[str, MultitaskEntry] = {}
        ignored: List[str] = []
        for name, entry in data.items():
            where = f"{path}:{lines.get(name, 1)}"
            if name not in MULTITASK_ROLES:
                raise ConfigError(f"{where}: unknown multitask decoder {name!r}; known: {', '.join(MULTITASK_ROLES)}")
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: {name} must be a mapping")
            expected_type, _ = MULTITASK_ROLES[name]
            decoder_type = entry.get("decoder_type")
            if decoder_type != expected_type:
                raise ConfigError(f"{where}: {name} needs decoder_type {expected_type!r}, got {decoder_type!r}")
            unknown_keys = sorted(set(entry) - set(ENTRY_KEYS))
            if unknown_keys:
                raise ConfigError(f"{where}: {name} has unknown keys {unknown_keys}; known: {list(ENTRY_KEYS)}")
            for key in ("dict", "data"):
                if not entry.get(key):
                    raise ConfigError(f"{where}: {name} is missing {key!r}")
            dict_path = _resolve(root, entry["dict"])
            if not dict_path.is_file():
                raise ConfigError(f"{where}: {name} dictionary not found: {dict_path}")
            data_dir = _resolve(root, entry["data"])
            if not data_dir.is_dir():
                raise ConfigError(f"{where}: {name} data folder not found: {data_dir}")
            try:
                weight = float(entry.get("loss_weight", 1.0))
                smoothing = float(entry.get("label_smoothing", 0.0))
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: {name} loss_weight and label_smoothing must be numbers") from None
            if weight < 0 or not 0.0 <= smoothing < 1.0:
                raise ConfigError(f"{where}: {name} needs loss_weight >= 0 and 0 <= label_smoothing < 1")
            entry_ignored, decoder_args = _meaning_nothing(name, entry, decoder_type, where)
            ignored += entry_ignored
            unknown = sorted(set(decoder_args) - set(DECODER_ARGS[name]))
            if unknown:
                raise ConfigError(
                    f"{where}: {name} decoder_args has unknown keys {unknown}; known: {list(DECODER_ARGS[name])}"
                )
            tasks[name] = MultitaskEntry(
                name=name,
                decoder_type=decoder_type,
                dict_path=dict_path,
                data_dir=data_dir,
                loss_weight=weight,
                label_smoothing=smoothing,
                decoder_args=decoder_args,
                line=lines.get(name, 1),
            )
        missing = [n for n in MULTITASK_ROLES if n not in tasks]
        if missing:
            raise ConfigError(
                f"{path}: missing multitask entries {missing} (all of {list(MULTITASK_ROLES)} are needed)"
            )
        return cls(path=path, tasks=tasks, ignored=ignored)
