"""A fix for SimulEval 1.1.4's computation-aware latency of speech output.

SimulEval records, for every speech segment an agent writes, both its delay (source read so far)
and its elapsed time (delay plus the wall time the system has spent). Its speech-output instances
then write ``"elapsed": []`` to ``instances.log``, and scoring reads the instances back from that
log, so every computation-aware metric of speech output (``--computation-aware``) fails with
"mean requires at least one data point". :func:`keep_speech_elapsed_times` makes the log keep the
recorded elapsed times. The agents call it when SimulEval builds them, before it builds its
instances (importing them patches nothing); it changes nothing else and is idempotent.
"""

from __future__ import annotations

__all__ = ["keep_speech_elapsed_times"]


def keep_speech_elapsed_times() -> None:
    from simuleval.evaluator.instance import SpeechOutputInstance

    original = SpeechOutputInstance.summarize
    if getattr(original, "_keeps_elapsed", False):
        return

    def summarize(self):
        info = original(self)
        if not info.get("elapsed") and len(self.elapsed) == len(info.get("delays", [])):
            info["elapsed"] = list(self.elapsed)
        return info

    summarize._keeps_elapsed = True
    SpeechOutputInstance.summarize = summarize
