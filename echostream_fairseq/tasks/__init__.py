"""Tasks registered with fairseq."""

from echostream_fairseq.tasks.speech_to_speech import EchoStreamSpeechToSpeechTask

__all__ = ["EchoStreamSpeechToSpeechTask"]
