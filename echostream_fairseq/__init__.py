"""EchoStream: StreamSpeech's simultaneous speech translation model on streaming encoders.

``import echostream_fairseq`` (or fairseq's ``--user-dir .../echostream_fairseq``) registers the
plugin's model, architectures, task, criterion and learning-rate schedule with fairseq, and
does nothing else. Loading a checkpoint with ``torch.load(weights_only=True)`` needs fairseq's
configuration classes allow-listed:
:func:`echostream_fairseq.tasks.checkpoint_configs.allow_fairseq_checkpoint_configs`, which the task's
``setup_task`` and :func:`~echostream_fairseq.checkpoint.load_echostream_model` call.
"""

from echostream_fairseq import criterions, models, optim, tasks  # noqa: F401  (registers with fairseq)

__version__ = "0.1.0"
