"""What fairseq loads. The speech encoder is here; the ``echostream`` model comes with its decoders."""

from echostream_fairseq.models.speech_encoder import EchoStreamSpeechEncoder, speech_encoder_defaults

__all__ = ["EchoStreamSpeechEncoder", "speech_encoder_defaults"]
