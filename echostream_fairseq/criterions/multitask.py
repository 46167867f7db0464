"""``echostream_multitask``: unit CTC plus weighted MT cross-entropy, ASR CTC and ST CTC.

``loss = w_unit * unit_ctc + w_mt * mt_label_smoothed_ce + w_asr * asr_ctc + w_st * st_ctc`` with
``w_unit`` from ``--unit-ctc-weight`` (default 1) and the other weights, the MT label smoothing and
the dictionaries taken from the multitask YAML (StreamSpeech: 1; 8, 4, 4; smoothing 0.1). Every
term is summed over the batch and the total is normalised by the number of target units, as
StreamSpeech does.

A loss schedule (``--loss-schedule TERM:START[:RAMP] ...``) switches terms on during training: a
term's weight is 0 before update START, then grows linearly to its full weight over RAMP updates
(0: at once). For example ``asr_ctc:0 st_ctc:200:200 mt:200:200 unit_ctc:400:200`` trains the ASR
CTC head alone first. Terms without an entry have their full weight from the start.

A gate (``--loss-schedule-gate BITS[:LATEST]``) starts the schedule's clock only once the ASR CTC
head has left the all-blank plateau: at the first update whose running training ASR CTC loss
(an exponential average over about ten updates, in bits per source subword) is below BITS, or at
update LATEST if that comes first. Until then every scheduled term weighs 0; after, START and RAMP
count from the update the gate opened. Why: with a fixed START, a run whose CTC heads had not left
the plateau when MT ramped in stayed on it (docs/decisions.md links the study). The opening update is not saved in
checkpoints: a run resumed with a running loss already below BITS counts its schedule from update 0.

A deadline (``--ctc-plateau-deadline UPDATES``, default 1000) stops a run whose ASR CTC head is
still on the all-blank plateau at that update (:mod:`echostream_fairseq.criterions.plateau`: its
running loss no more than a bit below the unigram entropy of the source subwords), with a message
that says so and what to try, instead of training on a model that cannot read its input.

Logged (fairseq's usual lines; losses in base 2): ``loss``, ``unit_ctc_loss`` (per unit),
``mt_loss`` / ``mt_nll_loss`` (per target subword), ``asr_ctc_loss`` / ``st_ctc_loss`` (per
subword) and, from greedy CTC decoding, ``asr_wer`` (source words), ``st_wer`` (target words) and,
in validation, ``unit_er`` (unit edit distance / reference units).
"""

from __future__ import annotations

import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from fairseq import metrics, utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from sacrebleu.metrics import BLEU
from torch import Tensor

from echostream_fairseq.common import streamspeech_names
from echostream_fairseq.criterions.plateau import PlateauWatch
from echostream_fairseq.data.text import edit_distance, pieces_to_words
from echostream_fairseq.modules.ctc import CTC_BLANK, ctc_greedy

__all__ = [
    "CTCPlateauStop",
    "EchoStreamMultitaskCriterion",
    "LOSS_TERMS",
    "parse_loss_gate",
    "parse_loss_schedule",
    "schedule_factor",
]

logger = logging.getLogger(__name__)

LOSS_TERMS = ("unit_ctc", "mt", "asr_ctc", "st_ctc")
DEFAULT_PLATEAU_DEADLINE = 1000
# a run resumed past the deadline is judged once the watch has followed this many of its updates
# (the running loss is not saved with the checkpoint)
RESUMED_WATCH_UPDATES = 50


class CTCPlateauStop(SystemExit):
    """Ends ``fairseq-train`` (exit status 1, the message on stderr): the ASR CTC head is still on
    the all-blank plateau at ``--ctc-plateau-deadline``."""


def parse_loss_schedule(items: Sequence[str]) -> Dict[str, Tuple[int, int]]:
    """``["asr_ctc:0", "mt:200:100"]`` -> ``{"asr_ctc": (0, 0), "mt": (200, 100)}`` (term: start, ramp)."""
    schedule: Dict[str, Tuple[int, int]] = {}
    for item in items:
        fields = item.split(":")
        if len(fields) not in (2, 3) or fields[0] not in LOSS_TERMS:
            raise ValueError(
                f"--loss-schedule: {item!r} is not TERM:START[:RAMP] with TERM one of {', '.join(LOSS_TERMS)}"
            )
        if fields[0] in schedule:
            raise ValueError(f"--loss-schedule: {fields[0]} is given twice")
        try:
            start, ramp = int(fields[1]), int(fields[2]) if len(fields) == 3 else 0
        except ValueError:
            raise ValueError(f"--loss-schedule: {item!r}: START and RAMP must be integers (updates)") from None
        if start < 0 or ramp < 0:
            raise ValueError(f"--loss-schedule: {item!r}: START and RAMP must not be negative")
        schedule[fields[0]] = (start, ramp)
    if schedule and all(start > 0 for start, _ in schedule.values()) and len(schedule) == len(LOSS_TERMS):
        raise ValueError("--loss-schedule: every term starts after update 0, so the first updates would train nothing")
    return schedule


def parse_loss_gate(text: Optional[str]) -> Optional[Tuple[float, Optional[int]]]:
    """``"6.0:1500"`` -> ``(6.0, 1500)``; ``"6.0"`` -> ``(6.0, None)``; ``None`` -> ``None`` (no gate)."""
    if text is None:
        return None
    fields = text.split(":")
    try:
        if len(fields) not in (1, 2):
            raise ValueError
        bits = float(fields[0])
        latest = int(fields[1]) if len(fields) == 2 else None
    except ValueError:
        raise ValueError(f"--loss-schedule-gate: {text!r} is not BITS[:LATEST] (a loss in bits, an update)") from None
    if not bits > 0 or (latest is not None and latest < 0):
        raise ValueError(f"--loss-schedule-gate: {text!r}: BITS must be positive and LATEST not negative")
    return bits, latest


def schedule_factor(schedule: Dict[str, Tuple[int, int]], term: str, num_updates: int) -> float:
    """The fraction of ``term``'s weight in force at ``num_updates`` updates done (0 .. 1)."""
    if term not in schedule:
        return 1.0
    start, ramp = schedule[term]
    if num_updates < start:
        return 0.0
    if ramp == 0:
        return 1.0
    return min(1.0, (num_updates - start + 1) / ramp)


@register_criterion("echostream_multitask")
class EchoStreamMultitaskCriterion(FairseqCriterion):
    def __init__(
        self,
        task,
        report_unit_error_rate: bool = True,
        report_mt_bleu: bool = True,
        loss_schedule: Sequence[str] = (),
        loss_schedule_gate: Optional[str] = None,
        unit_ctc_weight: float = 1.0,
        ctc_plateau_deadline: int = DEFAULT_PLATEAU_DEADLINE,
    ) -> None:
        super().__init__(task)
        if not (unit_ctc_weight > 0 and math.isfinite(unit_ctc_weight)):
            raise ValueError(f"--unit-ctc-weight must be a positive number, got {unit_ctc_weight}")
        if ctc_plateau_deadline < 0:
            raise ValueError(f"--ctc-plateau-deadline must be an update (0: never stop), got {ctc_plateau_deadline}")
        self.unit_weight = float(unit_ctc_weight)
        self.loss_schedule = parse_loss_schedule(loss_schedule or ())
        self.gate = parse_loss_gate(loss_schedule_gate)
        if self.gate is not None and not self.loss_schedule:
            raise ValueError("--loss-schedule-gate needs a --loss-schedule to hold back")
        # the update the schedule's clock starts at (None: the gate is still closed)
        self.gate_update: Optional[int] = None if self.gate is not None else 0
        self.src_dict = task.multitask_dictionaries["source_unigram"]
        self.plateau = PlateauWatch(len(self.src_dict))
        self.ctc_plateau_deadline = int(ctc_plateau_deadline)
        self._pending: List[float] = [0.0, 0.0]  # this update's ASR CTC loss (nats) and subwords
        self._pending_counts: Optional[Tensor] = None  # this update's source subword counts
        self._first_num_updates: Optional[int] = None
        self.num_updates = 0
        cfg = task.multitask_config.tasks
        self.mt_weight = cfg["target_unigram"].loss_weight
        self.mt_smoothing = cfg["target_unigram"].label_smoothing
        self.asr_weight = cfg["source_unigram"].loss_weight
        # settled once the head is seen off the plateau; from the start without a deadline, or
        # without an ASR CTC term (a head nothing trains is no sign of a stuck run)
        self._deadline_settled = self.ctc_plateau_deadline == 0 or self.asr_weight == 0
        self.st_weight = cfg["ctc_target_unigram"].loss_weight
        self.tgt_dict = task.multitask_dictionaries["target_unigram"]
        self.unit_dict = task.target_dictionary
        self.report_unit_error_rate = report_unit_error_rate
        self.report_mt_bleu = report_mt_bleu

    @staticmethod
    def add_args(parser) -> None:
        parser.add_argument(
            "--no-unit-error-rate",
            dest="report_unit_error_rate",
            action="store_false",
            help="skip the unit error rate in validation (it costs an edit distance per utterance)",
        )
        parser.add_argument(
            "--no-mt-bleu",
            dest="report_mt_bleu",
            action="store_false",
            help="skip the greedy MT decoding and BLEU of the dev split in validation",
        )
        parser.add_argument(
            "--unit-ctc-weight",
            type=float,
            default=1.0,
            metavar="W",
            help="weight of the unit CTC term (the main loss; StreamSpeech's is 1) beside the "
            "multitask YAML's MT, ASR CTC and ST CTC weights",
        )
        parser.add_argument(
            "--loss-schedule",
            nargs="*",
            default=[],
            metavar="TERM:START[:RAMP]",
            help="switch loss terms on during training: TERM (unit_ctc, mt, asr_ctc, st_ctc) has "
            "weight 0 before update START, then ramps linearly to its full weight over RAMP "
            "updates (default: every term at full weight from the start)",
        )
        parser.add_argument(
            "--loss-schedule-gate",
            default=None,
            metavar="BITS[:LATEST]",
            help="start the --loss-schedule clock once the running training ASR CTC loss is "
            "below BITS bits per source subword (the head has left the all-blank plateau), "
            "or at update LATEST at the latest; until then scheduled terms weigh 0",
        )
        parser.add_argument(
            "--ctc-plateau-deadline",
            type=int,
            default=DEFAULT_PLATEAU_DEADLINE,
            metavar="UPDATES",
            help="stop training, with a message, if the ASR CTC head is still on the all-blank "
            "plateau at this update (its running training loss within a bit of the source "
            f"subwords' unigram entropy); 0: never (default {DEFAULT_PLATEAU_DEADLINE})",
        )

    def set_num_updates(self, num_updates: int) -> None:
        """The updates done before the coming step (the task calls this from ``train_step``)."""
        num_updates = int(num_updates)
        if self._first_num_updates is None:
            self._first_num_updates = num_updates
        if num_updates != self.num_updates and self._watching:
            self._fold_update(num_updates)
        self.num_updates = num_updates

    @property
    def running_asr_ctc(self) -> Optional[float]:
        """The running training ASR CTC loss (bits per source subword) while it is watched."""
        return self.plateau.running

    @property
    def _watching(self) -> bool:
        return self.gate_update is None or not self._deadline_settled

    def _fold_update(self, num_updates: int) -> None:
        """Fold the finished update's ASR CTC loss into the running loss; open the gate if it is
        low; stop the run if the deadline finds the head on the plateau."""
        loss, subwords = self._pending
        self._pending = [0.0, 0.0]
        counts = self._pending_counts
        self._pending_counts = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # every worker opens the gate, and stops, at the same update
            both = torch.tensor([loss, subwords], dtype=torch.float64)
            torch.distributed.all_reduce(both)
            loss, subwords = both.tolist()
            if counts is None:
                counts = torch.zeros(len(self.src_dict), dtype=torch.float64)
            torch.distributed.all_reduce(counts)
        first = self.plateau.running is None
        self.plateau.fold(loss / subwords / math.log(2) if subwords > 0 else None, counts)
        if self.gate_update is None:
            self._update_gate(num_updates, first)
        if not self._deadline_settled:
            self._check_deadline(num_updates)

    def _check_deadline(self, num_updates: int) -> None:
        if self.plateau.running is not None and not self.plateau.on_plateau:
            logger.info(
                "the ASR CTC head left the all-blank plateau by update %d (%s)", num_updates, self.plateau.describe()
            )
            self._deadline_settled = True
        elif num_updates >= self._deadline_here():
            message = (
                f"stopping: the ASR CTC head is still on the all-blank plateau at update {num_updates} "
                f"(--ctc-plateau-deadline {self.ctc_plateau_deadline}): {self.plateau.describe()}, so the "
                f"encoder is not reading the speech and more updates of this run are wasted. Try: "
                f"{'; '.join(self._plateau_hints())}; --ctc-plateau-deadline 0 trains on regardless"
            )
            logger.error(message)
            raise CTCPlateauStop(message)

    def _deadline_here(self) -> int:
        """The update at which this process judges the plateau: the deadline, or for a run resumed
        past it, once the watch has followed ``RESUMED_WATCH_UPDATES`` of its updates."""
        start = self._first_num_updates or 0
        if start == 0:
            return self.ctc_plateau_deadline
        return max(self.ctc_plateau_deadline, start + RESUMED_WATCH_UPDATES)

    def _plateau_hints(self) -> List[str]:
        """What to try, the likeliest first (docs/results/2026-12-07-ctc-plateau.md measures each)."""
        transforms = self.task.data_cfg.transform_names(is_train=True)
        hints = []
        if not {"global_cmvn", "utterance_cmvn"} & set(transforms):
            hints.append(
                f"normalised features (global_cmvn in the training transforms of {self.task.data_cfg.path}: "
                "raw fbank keeps the heads on the plateau)"
            )
        hints.append("a gentler start (a longer --warmup-updates, or a lower --lr)")
        if "specaugment" in transforms:
            hints.append(f"weaker SpecAugment in {self.task.data_cfg.path}")
        hints.append("another --seed")
        return hints

    def _update_gate(self, num_updates: int, first: bool) -> None:
        running = self.plateau.running
        if running is not None and running < self.gate[0]:
            # a run resumed past the plateau (its first update here is low already) counts from 0
            self.gate_update = 0 if first and self._first_num_updates else num_updates
        latest = self.gate[1]
        if self.gate_update is None and latest is not None and num_updates >= latest:
            self.gate_update = latest
        if self.gate_update is not None:
            logger.info(
                "loss schedule gate open at update %d (running ASR CTC loss %s bits), the schedule "
                "counts from update %d",
                num_updates,
                "n/a" if self.running_asr_ctc is None else f"{self.running_asr_ctc:.2f}",
                self.gate_update,
            )

    def term_weights(self, scheduled: bool = True) -> Dict[str, float]:
        """The weight of each loss term at the current update (``scheduled=False``: the full weights)."""
        full = {
            "unit_ctc": self.unit_weight,
            "mt": self.mt_weight,
            "asr_ctc": self.asr_weight,
            "st_ctc": self.st_weight,
        }
        if not scheduled:
            return full
        if self.gate_update is None:  # the gate is closed: scheduled terms wait
            return {term: 0.0 if term in self.loss_schedule else w for term, w in full.items()}
        clock = self.num_updates - self.gate_update
        return {term: w * schedule_factor(self.loss_schedule, term, clock) for term, w in full.items()}

    def _ctc(self, logits: Tensor, lengths: Tensor, target: Tensor, target_lengths: Tensor) -> Tensor:
        lprobs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # [T, B, V]
        return F.ctc_loss(lprobs, target, lengths, target_lengths, blank=CTC_BLANK, reduction="sum", zero_infinity=True)

    def _word_errors(self, dictionary, logits, lengths, target, target_lengths):
        specials = [dictionary.pad(), dictionary.eos(), dictionary.unk()]
        hyps = ctc_greedy(logits.detach(), lengths, specials)
        errors = words = 0
        for hyp, ref, n in zip(hyps, target.tolist(), target_lengths.tolist()):
            ref_words = pieces_to_words(dictionary, ref[:n])
            errors += edit_distance(pieces_to_words(dictionary, hyp), ref_words)
            words += len(ref_words)
        return errors, words

    def forward(self, model, sample, reduce: bool = True):
        net_output = model(**sample["net_input"])
        tasks = sample["multitask"]
        enc_lengths = net_output["encoder_lengths"]

        units, unit_lengths = sample["target"], sample["target_lengths"]
        unit_loss = self._ctc(net_output["unit_logits"], net_output["unit_lengths"], units, unit_lengths)

        mt = tasks["target_unigram"]
        lprobs = F.log_softmax(net_output["mt_logits"].float(), dim=-1)
        mt_loss, mt_nll = label_smoothed_nll_loss(
            lprobs.view(-1, lprobs.size(-1)),
            mt["target"].view(-1),
            self.mt_smoothing,
            ignore_index=self.tgt_dict.pad(),
            reduce=True,
        )
        asr, st = tasks["source_unigram"], tasks["ctc_target_unigram"]
        asr_loss = self._ctc(net_output["asr_logits"], enc_lengths, asr["target"], asr["target_lengths"])
        st_loss = self._ctc(net_output["st_logits"], enc_lengths, st["target"], st["target_lengths"])

        # validation always weighs every term fully, so dev losses stay comparable along a schedule
        w = self.term_weights(scheduled=model.training)
        if model.training and self._watching:
            self._pending[0] += float(asr_loss.detach())
            self._pending[1] += float(asr["target_lengths"].sum())
            counts = self.plateau.count(asr["target"], asr["target_lengths"])
            self._pending_counts = counts if self._pending_counts is None else self._pending_counts + counts
        loss = w["unit_ctc"] * unit_loss + w["mt"] * mt_loss + w["asr_ctc"] * asr_loss + w["st_ctc"] * st_loss
        sample_size = int(unit_lengths.sum())
        log = {
            "loss": loss.data,
            "unit_ctc_loss": unit_loss.data,
            "mt_loss": mt_loss.data,
            "mt_nll_loss": mt_nll.data,
            "asr_ctc_loss": asr_loss.data,
            "st_ctc_loss": st_loss.data,
            "ntokens": sample_size,
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
            "src_ntokens": int(asr["target_lengths"].sum()),
            "tgt_ntokens": int(mt["target_lengths"].sum()),
            "st_ntokens": int(st["target_lengths"].sum()),
        }
        if model.training and self.gate is not None:
            log["loss_gate_open"] = float(self.gate_update is not None)
        log["asr_errors"], log["asr_words"] = self._word_errors(
            self.src_dict, net_output["asr_logits"], enc_lengths, asr["target"], asr["target_lengths"]
        )
        log["st_errors"], log["st_words"] = self._word_errors(
            self.tgt_dict, net_output["st_logits"], enc_lengths, st["target"], st["target_lengths"]
        )
        if not model.training and self.report_unit_error_rate:
            specials = [self.unit_dict.pad(), self.unit_dict.eos(), self.unit_dict.unk()]
            hyps = ctc_greedy(net_output["unit_logits"].detach(), net_output["unit_lengths"], specials)
            refs = [u[:n] for u, n in zip(units.tolist(), unit_lengths.tolist())]
            log["unit_errors"] = sum(edit_distance(h, r) for h, r in zip(hyps, refs))
            log["unit_total"] = sample_size
        if not model.training and self.report_mt_bleu:
            log.update(self._mt_bleu_stats(model, net_output["encoder_out"], mt["target"]))
        return loss, sample_size, log

    @torch.no_grad()
    def _mt_bleu_stats(self, model, encoder_out, target: Tensor) -> Dict[str, int]:
        """Greedy MT decoding (no incremental state: the targets are short) -> BLEU statistics."""
        d = self.tgt_dict
        batch = target.size(0)
        tokens = target.new_full((batch, 1), d.eos())
        done = torch.zeros(batch, dtype=torch.bool, device=target.device)
        for _ in range(target.size(1) + 10):
            logits, _ = model.decoder(tokens, encoder_out)
            logits = logits[:, -1].float()
            logits[:, [d.pad(), d.unk(), CTC_BLANK]] = float("-inf")
            step = logits.argmax(dim=-1).masked_fill(done, d.pad())
            tokens = torch.cat([tokens, step[:, None]], dim=1)
            done |= step.eq(d.eos())
            if bool(done.all()):
                break
        hyps = [" ".join(pieces_to_words(d, [t for t in row if t != d.eos()])) for row in tokens[:, 1:].tolist()]
        refs = [
            " ".join(pieces_to_words(d, [t for t in row if t not in (d.eos(), d.pad())])) for row in target.tolist()
        ]
        score = BLEU().corpus_score(hyps, [refs])
        stats = {"mt_bleu_sys_len": score.sys_len, "mt_bleu_ref_len": score.ref_len}
        for i in range(4):
            stats[f"mt_bleu_counts_{i}"] = score.counts[i]
            stats[f"mt_bleu_totals_{i}"] = score.totals[i]
        return stats

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        def total(key: str) -> float:
            # distributed training hands back tensors: fairseq's item() makes them plain numbers
            return float(utils.item(sum(log.get(key, 0) for log in logging_outputs)))

        def rate(m, errors: str, count: str) -> float:
            n = float(utils.item(m[count].sum))
            return round(100.0 * float(utils.item(m[errors].sum)) / n, 2) if n > 0 else float("nan")

        sample_size = total("sample_size")
        ln2 = math.log(2)
        metrics.log_scalar("loss", total("loss") / max(sample_size, 1) / ln2, sample_size, round=3)
        metrics.log_scalar("unit_ctc_loss", total("unit_ctc_loss") / max(sample_size, 1) / ln2, sample_size, round=3)
        for key, count in (
            ("mt_loss", "tgt_ntokens"),
            ("mt_nll_loss", "tgt_ntokens"),
            ("asr_ctc_loss", "src_ntokens"),
            ("st_ctc_loss", "st_ntokens"),
        ):
            n = total(count)
            metrics.log_scalar(key, total(key) / max(n, 1) / ln2, n, round=3)
        for name in ("asr", "st"):
            metrics.log_scalar(f"_{name}_errors", total(f"{name}_errors"))
            metrics.log_scalar(f"_{name}_words", total(f"{name}_words"))
            metrics.log_derived(f"{name}_wer", lambda m, name=name: rate(m, f"_{name}_errors", f"_{name}_words"))
        if any("loss_gate_open" in log for log in logging_outputs):
            # 1 once the schedule's clock runs (the mean over the logged updates while it opens)
            metrics.log_scalar("loss_gate_open", total("loss_gate_open") / len(logging_outputs), round=2)
        if total("unit_total") > 0:
            metrics.log_scalar("_unit_errors", total("unit_errors"))
            metrics.log_scalar("_unit_total", total("unit_total"))
            metrics.log_derived("unit_er", lambda m: rate(m, "_unit_errors", "_unit_total"))

        if total("mt_bleu_ref_len") > 0:
            keys = (
                [f"mt_bleu_counts_{i}" for i in range(4)]
                + [f"mt_bleu_totals_{i}" for i in range(4)]
                + ["mt_bleu_sys_len", "mt_bleu_ref_len"]
            )
            for key in keys:
                metrics.log_scalar("_" + key, total(key))

            def bleu(m) -> float:
                value = lambda key: int(utils.item(m["_" + key].sum))  # noqa: E731
                return round(
                    BLEU.compute_bleu(
                        [value(f"mt_bleu_counts_{i}") for i in range(4)],
                        [value(f"mt_bleu_totals_{i}") for i in range(4)],
                        value("mt_bleu_sys_len"),
                        value("mt_bleu_ref_len"),
                        smooth_method="exp",
                    ).score,
                    2,
                )

            metrics.log_derived("mt_bleu", bleu)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True


@register_criterion(streamspeech_names.CRITERION[0])
class StreamSpeechCriterion(EchoStreamMultitaskCriterion):
    """StreamSpeech's ``--criterion speech_to_unit_2pass_ctc_asr_st``: ours, with its two flags
    checked (the MT label smoothing lives in the multitask YAML, as in StreamSpeech; R-Drop is not
    implemented here)."""

    def __init__(
        self,
        task,
        report_unit_error_rate: bool = True,
        report_mt_bleu: bool = True,
        loss_schedule: Sequence[str] = (),
        loss_schedule_gate: Optional[str] = None,
        unit_ctc_weight: float = 1.0,
        label_smoothing: Optional[float] = None,
        rdrop_alpha: float = 0.0,
    ) -> None:
        # fairseq builds a criterion from its constructor's named parameters, so ours are repeated
        if rdrop_alpha:
            raise ValueError(f"--rdrop-alpha {rdrop_alpha}: R-Drop is not implemented here; use 0")
        super().__init__(
            task, report_unit_error_rate, report_mt_bleu, loss_schedule, loss_schedule_gate, unit_ctc_weight
        )
        if label_smoothing is not None and abs(label_smoothing - self.mt_smoothing) > 1e-9:
            raise ValueError(
                f"--label-smoothing {label_smoothing}, but {task.multitask_config.path} gives target_unigram "
                f"label_smoothing {self.mt_smoothing}: the MT smoothing is the multitask YAML's here"
            )

    @staticmethod
    def add_args(parser) -> None:
        EchoStreamMultitaskCriterion.add_args(parser)
        parser.add_argument(
            "--label-smoothing", type=float, default=None, help="StreamSpeech's: must equal the YAML's MT smoothing"
        )
        parser.add_argument("--rdrop-alpha", type=float, default=0.0, help="StreamSpeech's R-Drop weight: 0 only")
