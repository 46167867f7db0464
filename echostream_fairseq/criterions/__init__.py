"""Training criteria registered with fairseq."""

from echostream_fairseq.criterions.multitask import EchoStreamMultitaskCriterion

__all__ = ["EchoStreamMultitaskCriterion"]
