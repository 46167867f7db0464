"""What fairseq loads: the speech encoder and the ``echostream`` model with its decoders."""

from echostream_fairseq.models.echostream import EchoStreamModel
from echostream_fairseq.models.speech_encoder import EchoStreamSpeechEncoder, speech_encoder_defaults

__all__ = ["EchoStreamSpeechEncoder", "EchoStreamModel", "speech_encoder_defaults"]
