"""``echostream_multitask``: unit CTC plus weighted MT cross-entropy, ASR CTC and ST CTC.

``loss = unit_ctc + w_mt * mt_label_smoothed_ce + w_asr * asr_ctc + w_st * st_ctc`` with the
weights, the MT label smoothing and the dictionaries taken from the multitask YAML
(StreamSpeech: 8, 4, 4; smoothing 0.1). Every term is summed over the batch and the total is
normalised by the number of target units, as StreamSpeech does.

Logged (fairseq's usual lines; losses in base 2): ``loss``, ``unit_ctc_loss`` (per unit),
``mt_loss`` / ``mt_nll_loss`` (per target subword), ``asr_ctc_loss`` / ``st_ctc_loss`` (per
subword) and, from greedy CTC decoding, ``asr_wer`` (source words), ``st_wer`` (target words) and,
in validation, ``unit_er`` (unit edit distance / reference units).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor
from fairseq import metrics, utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss

from echostream_fairseq.streaming.ctc import CTC_BLANK, ctc_greedy
from echostream_fairseq.data.text import edit_distance, pieces_to_words

__all__ = ["EchoStreamMultitaskCriterion"]


@register_criterion("echostream_multitask")
class EchoStreamMultitaskCriterion(FairseqCriterion):
    def __init__(self, task, report_unit_error_rate: bool = True) -> None:
        super().__init__(task)
        cfg = task.multitask_config.tasks
        self.mt_weight = cfg["target_unigram"].loss_weight
        self.mt_smoothing = cfg["target_unigram"].label_smoothing
        self.asr_weight = cfg["source_unigram"].loss_weight
        self.st_weight = cfg["ctc_target_unigram"].loss_weight
        self.src_dict = task.multitask_dictionaries["source_unigram"]
        self.tgt_dict = task.multitask_dictionaries["target_unigram"]
        self.unit_dict = task.target_dictionary
        self.report_unit_error_rate = report_unit_error_rate

    @staticmethod
    def add_args(parser) -> None:
        parser.add_argument("--no-unit-error-rate", dest="report_unit_error_rate", action="store_false",
                            help="skip the unit error rate in validation (it costs an edit distance per utterance)")

    def _ctc(self, logits: Tensor, lengths: Tensor, target: Tensor, target_lengths: Tensor) -> Tensor:
        lprobs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # [T, B, V]
        return F.ctc_loss(lprobs, target, lengths, target_lengths, blank=CTC_BLANK, reduction="sum",
                          zero_infinity=True)

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
            lprobs.view(-1, lprobs.size(-1)), mt["target"].view(-1), self.mt_smoothing,
            ignore_index=self.tgt_dict.pad(), reduce=True,
        )
        asr, st = tasks["source_unigram"], tasks["ctc_target_unigram"]
        asr_loss = self._ctc(net_output["asr_logits"], enc_lengths, asr["target"], asr["target_lengths"])
        st_loss = self._ctc(net_output["st_logits"], enc_lengths, st["target"], st["target_lengths"])

        loss = unit_loss + self.mt_weight * mt_loss + self.asr_weight * asr_loss + self.st_weight * st_loss
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
        log["asr_errors"], log["asr_words"] = self._word_errors(
            self.src_dict, net_output["asr_logits"], enc_lengths, asr["target"], asr["target_lengths"])
        log["st_errors"], log["st_words"] = self._word_errors(
            self.tgt_dict, net_output["st_logits"], enc_lengths, st["target"], st["target_lengths"])
        if not model.training and self.report_unit_error_rate:
            specials = [self.unit_dict.pad(), self.unit_dict.eos(), self.unit_dict.unk()]
            hyps = ctc_greedy(net_output["unit_logits"].detach(), net_output["unit_lengths"], specials)
            refs = [u[:n] for u, n in zip(units.tolist(), unit_lengths.tolist())]
            log["unit_errors"] = sum(edit_distance(h, r) for h, r in zip(hyps, refs))
            log["unit_total"] = sample_size
        return loss, sample_size, log

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
        for key, count in (("mt_loss", "tgt_ntokens"), ("mt_nll_loss", "tgt_ntokens"),
                           ("asr_ctc_loss", "src_ntokens"), ("st_ctc_loss", "st_ntokens")):
            n = total(count)
            metrics.log_scalar(key, total(key) / max(n, 1) / ln2, n, round=3)
        for name in ("asr", "st"):
            metrics.log_scalar(f"_{name}_errors", total(f"{name}_errors"))
            metrics.log_scalar(f"_{name}_words", total(f"{name}_words"))
            metrics.log_derived(f"{name}_wer", lambda m, name=name: rate(m, f"_{name}_errors", f"_{name}_words"))
        if total("unit_total") > 0:
            metrics.log_scalar("_unit_errors", total("unit_errors"))
            metrics.log_scalar("_unit_total", total("unit_total"))
            metrics.log_derived("unit_er", lambda m: rate(m, "_unit_errors", "_unit_total"))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
