"""Two-pass offline decoding: beam search on the MT decoder, then text-to-unit and unit CTC.

:class:`TwoPassGenerator` runs the encoder once; from its states it reads the ASR CTC (greedy source
subwords, or a lexicon beam search with a word model) and the ST CTC, runs fairseq's
:class:`~fairseq.sequence_generator.SequenceGenerator` on the MT decoder (beam search), re-runs the
MT decoder on the best hypothesis to get its states, and maps them to units with the T2U encoder and
the unit decoder (greedy CTC, offline masks).

Its hypotheses are fairseq's: ``tokens`` are the units (so ``fairseq-generate`` writes them on its
``H-``/``D-`` lines), ``score`` is the MT beam score, and ``asr_tokens`` (greedy), ``asr_words``
(the lexicon search, when there is one) and ``mt_tokens`` carry the text for the task to print.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch
from fairseq.data import data_utils
from fairseq.sequence_generator import EnsembleModel, SequenceGenerator
from torch import Tensor

from echostream_fairseq.modules.ctc import CTC_BLANK, ctc_greedy
from echostream_fairseq.modules.ctc_lexicon import CtcLexiconDecoder

__all__ = ["TwoPassGenerator"]


class _EncodedEnsemble(EnsembleModel):
    """A one-model ensemble whose encoder output was computed before the search."""

    def __init__(self, model) -> None:
        super().__init__([model])
        self.encoder_out = None

    def forward_encoder(self, net_input: Dict[str, Tensor]):
        return [self.encoder_out]


class TwoPassGenerator:
    """Args:
    model: an :class:`~echostream_fairseq.models.echostream.EchoStreamModel`.
    tgt_dict: target subword dictionary (MT), src_dict: source subword dictionary (ASR),
    unit_dict: unit dictionary.
    asr_decoder: decodes the ASR CTC instead of greedy search (a lexicon and word model).
    beam, max_len_a, max_len_b, ...: fairseq's beam-search settings for the MT pass.
    """

    def __init__(
        self, model, tgt_dict, src_dict, unit_dict, asr_decoder: Optional[CtcLexiconDecoder] = None, **search_args: Any
    ) -> None:
        self.model, self.tgt_dict, self.src_dict, self.unit_dict = model, tgt_dict, src_dict, unit_dict
        self.asr_decoder = asr_decoder
        self.ensemble = _EncodedEnsemble(model)
        self.search = SequenceGenerator(self.ensemble, tgt_dict, **search_args)
        self.symbols_to_strip_from_output = {unit_dict.eos()}

    def cuda(self) -> "TwoPassGenerator":
        self.search.cuda()
        return self

    @torch.no_grad()
    def generate(self, models, sample: Dict[str, Any], **kwargs: Any) -> List[List[Dict[str, Any]]]:
        model = self.model
        model.eval()
        net_input = sample["net_input"]
        encoder_out = model.encoder(net_input["src_tokens"], net_input["src_lengths"])
        enc_lengths = encoder_out["src_lengths"][0]
        ctc = model.ctc_outputs(encoder_out)
        asr = ctc_greedy(ctc["asr_logits"], enc_lengths, self._specials(self.src_dict))
        asr_words = None
        if self.asr_decoder is not None:
            asr_words = self.asr_decoder.decode_batch(ctc["asr_logits"].float().log_softmax(dim=-1), enc_lengths)
        st = ctc_greedy(ctc["st_logits"], enc_lengths, self._specials(self.tgt_dict))

        self.ensemble.encoder_out = encoder_out
        mt_hypos = self.search.generate([model], sample, **kwargs)
        self.ensemble.encoder_out = None
        best = [h[0] for h in mt_hypos]
        eos, pad = self.tgt_dict.eos(), self.tgt_dict.pad()
        # fairseq's hypotheses end with eos; the decoder input is eos, then the tokens before it
        prev = data_utils.collate_tokens([h["tokens"] for h in best], pad, eos, move_eos_to_beginning=True)
        prev = prev.to(enc_lengths.device)
        hidden, _ = model.decoder(prev, encoder_out, features_only=True)
        text_lengths = prev.ne(pad).sum(dim=1)
        unit_out = model.text_to_units(hidden, text_lengths)
        logits = unit_out["unit_logits"].float().log_softmax(dim=-1)
        logits[..., self._specials(self.unit_dict)] = float("-inf")  # pad/eos/unk are never units
        units = ctc_greedy(logits, unit_out["unit_lengths"])
        best_lp, best_id = logits.max(dim=-1)
        previous = torch.zeros_like(best_id)
        previous[:, 1:] = best_id[:, :-1]
        starts = (best_id != CTC_BLANK) & (best_id != previous)  # the frames where ctc_greedy emits

        results = []
        for b, n in enumerate(unit_out["unit_lengths"].tolist()):
            tokens = torch.tensor(units[b] + [self.unit_dict.eos()], dtype=torch.long)
            # per-unit score: the log-probability at the frame that emits the unit (0 for eos)
            scores = torch.cat([best_lp[b, :n][starts[b, :n]].cpu(), best_lp.new_zeros(1).cpu()])
            results.append(
                [
                    {
                        "tokens": tokens,
                        "score": float(best[b]["score"]),
                        "positional_scores": scores,
                        "alignment": None,
                        "attention": None,
                        "asr_tokens": asr[b],
                        "asr_words": None if asr_words is None else asr_words[b],
                        "st_tokens": st[b],
                        "mt_tokens": best[b]["tokens"][:-1].tolist(),
                        "mt_score": float(best[b]["score"]),
                    }
                ]
            )
        return results

    @staticmethod
    def _specials(d) -> List[int]:
        return [d.pad(), d.eos(), d.unk()]
