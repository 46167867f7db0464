"""Learning-rate schedules registered with fairseq (``--lr-scheduler``)."""

from echostream_fairseq.optim import anneal  # noqa: F401  (registers with fairseq)
