"""The translator's settings have one home: the flags' defaults are TranslatorOptions', and the
options resolve to the config the loaders build."""

import argparse
from dataclasses import fields

import pytest

from echostream_fairseq.streaming.options import (
    TranslatorOptions,
    VocoderOptions,
    add_translator_args,
    options_from_args,
    translator_config,
    vocoder_options_from_args,
)
from echostream_fairseq.streaming.translator_state import TranslatorConfig


def _parse(argv, speech_output=True):
    parser = argparse.ArgumentParser()
    add_translator_args(parser, speech_output=speech_output, source_segment_size=True)
    return parser.parse_args(["--model-path", "m.pt", "--data-bin", "d", *argv])


def test_the_flags_defaults_are_the_options_defaults():
    args = _parse([])
    assert options_from_args(args, "speech") == TranslatorOptions()
    assert vocoder_options_from_args(args) == VocoderOptions()
    # every option but what the entry point decides (its output) is a flag
    assert {f.name for f in fields(TranslatorOptions)} - set(vars(args)) == {"output"}


def test_flags_reach_the_options_and_the_config():
    args = _parse(["--source-segment-size", "640", "--lagging-k1", "2", "--sentence-pause-ms", "0", "--max-len", "9"])
    options = options_from_args(args, "text")
    assert (options.source_segment_size, options.lagging_k1, options.max_len) == (640, 2, 9)
    config = translator_config(options, trained_sentence_ends=False, model_path="m.pt")
    assert config.policy.lagging_k1 == 2 and config.policy.whole_word  # auto: whole words at 640 ms
    assert config.sentence_pause_frames == 0 and config.sentence_confirmed_pause_frames == 6  # 240 ms, 40 ms frames
    assert config.sentence_mark_pause_frames == 5  # 200 ms
    args = _parse(["--sentence-mark-pause-ms", "90"])
    assert translator_config(options_from_args(args, "text"), False, "m.pt").sentence_mark_pause_frames == 3
    assert (config.speech_output, config.translate, config.max_len) == (False, True, 9)


def test_shared_defaults_are_read_from_the_config():
    options, config = TranslatorOptions(), TranslatorConfig()
    for name in ("source_segment_size", "max_len", "mt_source_window", "target_window", "unit_lookahead"):
        assert getattr(options, name) == getattr(config, name), name


def test_bad_options_are_named():
    with pytest.raises(ValueError, match=r"unknown translator option\(s\) \['max_length'\]; known: .*'max_len'"):
        TranslatorOptions.of(max_length=3)
    with pytest.raises(ValueError, match="unknown output 'video'; use one of"):
        TranslatorOptions(output="video")
    with pytest.raises(ValueError, match="--whole-word must be one of"):
        TranslatorOptions(whole_word="yes")
    with pytest.raises(ValueError, match="--unit-lookahead must be >= 0 text states, got -1"):
        TranslatorOptions(unit_lookahead=-1)
    with pytest.raises(ValueError, match="--sentence-pause-ms must be >= 0 milliseconds, got -5"):
        translator_config(TranslatorOptions(sentence_pause_ms=-5), False, "m.pt")
    with pytest.raises(ValueError, match="--sentence-mark-pause-ms must be >= 0 milliseconds, got -1"):
        translator_config(TranslatorOptions(sentence_mark_pause_ms=-1), False, "m.pt")
    with pytest.raises(ValueError, match="--asr-sentence-ends on: m.pt was not trained with --asr-sentence-ends"):
        translator_config(TranslatorOptions(asr_sentence_ends="on"), False, "m.pt")
