"""Translators for tests: one builder over a loaded ``(model, task)``, and stages that follow a
script (wrapping a translator's own, through its public stage attributes)."""

from echostream_fairseq.streaming.loading import build_translator
from echostream_fairseq.streaming.planning import WritePlanner
from echostream_fairseq.streaming.translator_state import TranslatorConfig


def make_translator(loaded, *, vocoder=None, asr_decoder=None, reencode=False, unit_refiner=None, **config):
    """A translator of ``loaded`` with ``TranslatorConfig(**config)`` (speech output when a
    vocoder is given)."""
    model, task = loaded
    config = TranslatorConfig(**{"speech_output": vocoder is not None, **config})
    return build_translator(model, task, config, vocoder, asr_decoder, reencode, unit_refiner=unit_refiner)


class ScriptedPolicy:
    """The READ/WRITE decision ``target_of(state, policy_target, finish)`` after the translator's own
    (which still updates the policy's state)."""

    def __init__(self, policy, target_of):
        self.policy, self.target_of = policy, target_of

    def decide(self, state, finish):
        state, target = self.policy.decide(state, finish)
        return state, self.target_of(state, target, finish)


def script_policy(translator, target_of):
    """``translator`` with its policy replaced by a :class:`ScriptedPolicy`."""
    policy = ScriptedPolicy(translator.planner.policy, target_of)
    translator.planner = WritePlanner(translator.config, translator.sentence_ends, policy)
    return translator


class RecordingUnits:
    """The translator's unit stage, recording every text state it is given."""

    def __init__(self, units):
        self.units, self.seen = units, []

    def step_batch(self, requests):
        self.seen.extend(r.text_states for r in requests if r.text_states is not None)
        return self.units.step_batch(requests)


def plan_to(translator, state, target):
    """The plan that writes ``state`` to ``target`` (the policy's target or FINISH)."""
    return translator.planner.to_target(state, target)


__all__ = ["make_translator", "ScriptedPolicy", "script_policy", "RecordingUnits", "plan_to"]
