"""EchoStream: StreamSpeech's simultaneous speech translation model on streaming encoders.

``import echostream_fairseq`` (or fairseq's ``--user-dir .../echostream_fairseq``) registers the
plugin's components with fairseq and allow-lists fairseq's checkpoint configuration classes so that
checkpoints load with ``torch.load(weights_only=True)``.
"""

from echostream_fairseq.checkpoint import allow_fairseq_checkpoint_configs

allow_fairseq_checkpoint_configs()

from echostream_fairseq import criterions, models, modules, streaming, tasks  # noqa: E402,F401  (registers with fairseq)

__version__ = "0.1.0"
