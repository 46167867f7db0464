"""Streaming state and drivers: feed audio features chunk by chunk with explicit state."""

from echostream_fairseq.streaming.encoder_stream import EncoderStreamState, init_encoder_stream, encoder_stream_step

__all__ = ["EncoderStreamState", "init_encoder_stream", "encoder_stream_step"]
