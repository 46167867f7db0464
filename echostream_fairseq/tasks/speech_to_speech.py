"""``echostream_speech_to_speech``: speech in, units out, with ASR / ST / MT auxiliary text.

Data folder (what ``echostream-prep`` writes)::

    DATA/{split}.tsv                  id, src_audio, src_n_frames, tgt_audio (units), tgt_n_frames
    DATA/config.yaml                  features, CMVN, SpecAugment, units (see tasks/configs.py)
    DATA/config_multitask.yaml        source_unigram, ctc_target_unigram, target_unigram
    DATA/<task data>/{split}.tsv      id, tgt_text (sentencepiece pieces)

Offline decoding with ``fairseq-generate`` uses :class:`~echostream_fairseq.generator.TwoPassGenerator`.
fairseq writes the units on its ``H-``/``D-`` lines; this task adds, per utterance, ``ID-`` (the
corpus id), ``ASR-`` (source text from the ASR CTC), ``ST-`` (target text from the ST CTC) and
``MT-`` (score and target text from beam search) lines, on stdout or, with ``--results-path``, in
``generate-{subset}.text.txt`` beside fairseq's own file.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Dict, Optional

from fairseq.data import Dictionary
from fairseq.tasks import FairseqTask, register_task

from echostream_fairseq.common import streamspeech_names
from echostream_fairseq.data.speech_to_unit_dataset import SpeechToUnitDataset, load_text_target, read_word_sentences
from echostream_fairseq.data.text import pieces_to_words
from echostream_fairseq.tasks.checkpoint_configs import allow_fairseq_checkpoint_configs
from echostream_fairseq.tasks.configs import ConfigError, DataConfig, MultitaskConfig

logger = logging.getLogger(__name__)

__all__ = ["EchoStreamSpeechToSpeechTask"]


def _load_dictionary(path: Path, what: str) -> Dictionary:
    if not path.is_file():
        raise ConfigError(f"{path}: {what} dictionary not found")
    try:
        return Dictionary.load(str(path))
    except Exception as e:  # fairseq raises ValueError/RuntimeError with the bad line
        raise ConfigError(f"{path}: cannot read the {what} dictionary: {e}") from None


def _unit_dictionary(data_cfg: DataConfig, target_code_size: Optional[int]) -> Dictionary:
    """The units' dictionary: the data config's ``units: dict`` or ``num_units``, or, where it has no
    ``units:`` (StreamSpeech's configs), ``--target-code-size`` units ``0 .. K-1``."""
    unit_dict_path = data_cfg.units.get("dict")
    if unit_dict_path is not None:
        unit_dict = _load_dictionary(Path(unit_dict_path), "unit")
    elif data_cfg.units.get("num_units") or target_code_size:
        unit_dict = Dictionary()
        for u in range(int(data_cfg.units.get("num_units") or target_code_size)):
            unit_dict.add_symbol(str(u))
    else:
        raise ConfigError(
            f"{data_cfg.path}: units needs 'dict' or 'num_units', or give --target-code-size K "
            "(StreamSpeech's configs have no 'units:')"
        )
    num_units = len(unit_dict) - unit_dict.nspecial
    if target_code_size and target_code_size != num_units:
        raise ConfigError(f"--target-code-size {target_code_size}, but {data_cfg.path}'s units number {num_units}")
    return unit_dict


def _exit_now(stop: SystemExit) -> None:
    """End the process as ``stop`` asks, at once. Unwinding fairseq's loop would leave its
    prefetching thread inside torch while the interpreter shuts down, and that aborts the process
    (``terminate called without an active exception``, exit status -6) instead of exiting."""
    code = stop.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


@register_task("echostream_speech_to_speech")
class EchoStreamSpeechToSpeechTask(FairseqTask):
    @staticmethod
    def add_args(parser) -> None:
        parser.add_argument("data", help="corpus folder (manifests, config YAMLs)")
        parser.add_argument("--config-yaml", type=str, default="config.yaml", help="data config, relative to DATA")
        parser.add_argument(
            "--multitask-config-yaml",
            type=str,
            default="config_multitask.yaml",
            help="multitask config, relative to DATA",
        )
        parser.add_argument(
            "--asr-sentence-ends",
            action="store_true",
            help="the ASR CTC target ends every sentence with </s>, so the head learns to mark "
            "sentence ends (long-form streams; the agents then end a sentence there)",
        )
        parser.add_argument(
            "--asr-beam",
            type=int,
            default=0,
            metavar="N",
            help="offline decoding: the ASR transcript from a CTC prefix beam search of N prefixes "
            "restricted to the words of the training text and scored with a word trigram "
            "fitted on it (0: greedy CTC)",
        )
        parser.add_argument(
            "--asr-lm-weight",
            type=float,
            default=0.5,
            metavar="W",
            help="with --asr-beam: weight of the word trigram's log-probability",
        )
        parser.add_argument(
            "--asr-word-bonus", type=float, default=2.0, metavar="B", help="with --asr-beam: score added per word"
        )
        parser.add_argument(
            "--asr-lm-split",
            type=str,
            default="train",
            metavar="SPLIT",
            help="with --asr-beam: the split whose ASR targets give the lexicon and the trigram",
        )
        parser.add_argument(
            "--target-code-size",
            type=int,
            default=None,
            metavar="K",
            help="the number of discrete units, for a data config without 'units:' (StreamSpeech's flag; "
            "with 'units:' it must agree)",
        )
        parser.add_argument(
            "--unknown-pieces",
            choices=("refuse", "unk"),
            default="refuse",
            help="a subword of a task's TSV that its dictionary lacks: refuse the corpus (default), or "
            "read it as <unk> (fairseq's way)",
        )
        parser.add_argument(
            "--target-is-code",
            action="store_true",
            help="StreamSpeech's flag, accepted: the targets here are always discrete units",
        )
        parser.add_argument(
            "--max-source-positions", type=int, default=6000, metavar="N", help="longest source in fbank frames"
        )
        parser.add_argument(
            "--max-target-positions",
            type=int,
            default=1024,
            metavar="N",
            help="longest target in units (and MT tokens)",
        )

    def __init__(
        self,
        args,
        data_cfg: DataConfig,
        multitask_config: MultitaskConfig,
        unit_dict: Dictionary,
        multitask_dictionaries: Dict[str, Dictionary],
    ) -> None:
        super().__init__(args)
        self.args = args
        self.data_cfg, self.multitask_config = data_cfg, multitask_config
        self.unit_dict, self.multitask_dictionaries = unit_dict, multitask_dictionaries
        self._text_out = None

    @property
    def asr_sentence_ends(self) -> bool:
        """Whether the ASR CTC head was taught to mark sentence ends (older checkpoints: no)."""
        return bool(getattr(self.args, "asr_sentence_ends", False))

    @classmethod
    def setup_task(cls, args, **kwargs) -> "EchoStreamSpeechToSpeechTask":
        # fairseq-train (resuming) and fairseq-generate set the task up before they torch.load a
        # checkpoint, whose stored configuration needs the allow-list under weights_only loading
        allow_fairseq_checkpoint_configs()
        root = Path(args.data)
        if not root.is_dir():
            raise ConfigError(f"{root}: data folder not found")
        data_cfg = DataConfig.load(root / args.config_yaml)
        multitask_config = MultitaskConfig.load(root / args.multitask_config_yaml)
        unit_dict = _unit_dictionary(data_cfg, getattr(args, "target_code_size", None))
        if multitask_config.ignored:
            logger.warning(
                "%s: StreamSpeech's settings that mean nothing here, ignored: %s",
                multitask_config.path,
                ", ".join(multitask_config.ignored),
            )
        dicts = {name: _load_dictionary(entry.dict_path, name) for name, entry in multitask_config.tasks.items()}
        logger.info(
            "units: %d, %s", len(unit_dict) - unit_dict.nspecial, ", ".join(f"{n}: {len(d)}" for n, d in dicts.items())
        )
        return cls(args, data_cfg, multitask_config, unit_dict, dicts)

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs) -> None:
        if "," in split:
            raise ConfigError(f"one split at a time, got {split!r}")
        root = Path(self.args.data)
        manifest = root / f"{split}.tsv"
        if not manifest.is_file():
            raise ConfigError(f"{manifest}: manifest for split {split!r} not found")
        is_train = split.startswith("train")
        dataset = SpeechToUnitDataset(
            manifest,
            self.unit_dict,
            {},
            sample_rate=self.data_cfg.sample_rate,
            input_feat_per_channel=self.data_cfg.input_feat_per_channel,
            feature_transform=self.data_cfg.feature_transforms(is_train),
            shuffle=is_train,
        )
        for name, entry in self.multitask_config.tasks.items():
            dataset.text_targets[name] = load_text_target(
                name,
                entry.data_dir / f"{split}.tsv",
                self.multitask_dictionaries[name],
                append_eos=entry.decoder_type != "ctc",
                ids=dataset.ids,
                sentence_ends=name == "source_unigram" and self.asr_sentence_ends,
                unknown_as_unk=getattr(self.args, "unknown_pieces", "refuse") == "unk",
            )
        self.datasets[split] = dataset
        logger.info("%s: %d utterances from %s", split, len(dataset), manifest)

    @property
    def target_dictionary(self) -> Dictionary:
        return self.unit_dict

    @property
    def source_dictionary(self) -> Optional[Dictionary]:
        return None

    def max_positions(self):
        return self.args.max_source_positions, self.args.max_target_positions

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        # a criterion with a loss schedule needs the update count, which fairseq gives only to tasks
        if hasattr(criterion, "set_num_updates"):
            try:
                criterion.set_num_updates(update_num)
            except SystemExit as stop:  # the criterion ends the run (a head stuck on the CTC plateau)
                _exit_now(stop)
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    # -- offline decoding ------------------------------------------------------------------------

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        from echostream_fairseq.generator import TwoPassGenerator

        search_args = dict(
            beam_size=getattr(args, "beam", 5),
            max_len_a=getattr(args, "max_len_a", 0),
            max_len_b=getattr(args, "max_len_b", 200),
            min_len=getattr(args, "min_len", 1),
            normalize_scores=not getattr(args, "unnormalized", False),
            len_penalty=getattr(args, "lenpen", 1),
            unk_penalty=getattr(args, "unkpen", 0),
            temperature=getattr(args, "temperature", 1.0),
            match_source_len=getattr(args, "match_source_len", False),
            no_repeat_ngram_size=getattr(args, "no_repeat_ngram_size", 0),
        )
        return TwoPassGenerator(
            models[0],
            self.multitask_dictionaries["target_unigram"],
            self.multitask_dictionaries["source_unigram"],
            self.unit_dict,
            # the ASR search flags are the task's (fairseq passes its generation config as ``args``)
            asr_decoder=self.build_asr_decoder(
                int(getattr(self.args, "asr_beam", 0) or 0),
                float(getattr(self.args, "asr_lm_weight", 0.5)),
                float(getattr(self.args, "asr_word_bonus", 2.0)),
                getattr(self.args, "asr_lm_split", "train"),
            ),
            **search_args,
        )

    def build_asr_decoder(self, beam: int, lm_weight: float = 0.5, word_bonus: float = 2.0, split: str = "train"):
        """The lexicon and trigram search of ``--asr-beam`` (``None`` for greedy CTC, ``beam`` 0),
        fitted on the ASR targets of ``split``."""
        from echostream_fairseq.modules.ctc_lexicon import lexicon_decoder_from_text

        if beam < 0:
            raise ConfigError(f"--asr-beam must be 0 (greedy) or positive, got {beam}")
        if beam == 0:
            return None
        entry = self.multitask_config.tasks["source_unigram"]
        sentences = read_word_sentences(entry.data_dir / f"{split}.tsv")
        d = self.multitask_dictionaries["source_unigram"]
        decoder = lexicon_decoder_from_text(
            [d[i] for i in range(len(d))],
            sentences,
            beam=beam,
            lm_weight=lm_weight,
            word_bonus=word_bonus,
            banned=[d.pad(), d.eos(), d.unk()],
        )
        logger.info(
            "ASR: lexicon of %d words, trigram on %d sentences of %s, beam %d",
            len(decoder.lexicon),
            len(sentences),
            split,
            beam,
        )
        return decoder

    def _text_stream(self):
        if self._text_out is None:
            results_path = getattr(self.args, "results_path", None)
            if results_path:
                Path(results_path).mkdir(parents=True, exist_ok=True)
                subset = getattr(self.args, "gen_subset", "test")
                self._text_out = open(
                    Path(results_path) / f"generate-{subset}.text.txt", "w", buffering=1, encoding="utf-8"
                )
            else:
                self._text_out = sys.stdout
        return self._text_out

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        hypos = generator.generate(models, sample, prefix_tokens=prefix_tokens, constraints=constraints)
        out = self._text_stream()
        dataset = self.datasets.get(getattr(self.args, "gen_subset", None))
        src_dict = self.multitask_dictionaries["source_unigram"]
        tgt_dict = self.multitask_dictionaries["target_unigram"]
        for index, hypo in zip(sample["id"].tolist(), hypos):
            h = hypo[0]
            if dataset is not None and hasattr(dataset, "id_of"):
                print(f"ID-{index}\t{dataset.id_of(index)}", file=out)
            words = h.get("asr_words")
            asr = " ".join(pieces_to_words(src_dict, h["asr_tokens"]) if words is None else words)
            st = " ".join(pieces_to_words(tgt_dict, h["st_tokens"]))
            mt = " ".join(pieces_to_words(tgt_dict, h["mt_tokens"]))
            print(f"ASR-{index}\t{asr}", file=out)
            print(f"ST-{index}\t{st}", file=out)
            print(f"MT-{index}\t{h['mt_score']:.4f}\t{mt}", file=out)
        return hypos


@register_task(streamspeech_names.TASK[0])
class StreamSpeechTask(EchoStreamSpeechToSpeechTask):
    """StreamSpeech's ``--task speech_to_speech_ctc``: ours, taking its flags too."""

    @staticmethod
    def add_args(parser) -> None:
        EchoStreamSpeechToSpeechTask.add_args(parser)
        parser.add_argument(
            "--vocoder",
            choices=("griffin_lim", "hifigan", "code_hifigan"),
            default=None,
            help="StreamSpeech's (for its --eval-inference): nothing here; the agents take the vocoder",
        )
