"""espeak-ng through ctypes: history-independent output, distinct voices, errors."""

import numpy as np
import pytest
import torch
import torchaudio

from echostream_fairseq.data.tts import (
    ESPEAK_SAMPLE_RATE,
    GENERATED_VOICES,
    QUALITY_VOICES,
    SOURCE_VOICES,
    TARGET_VOICE,
    VARIANTS,
    TtsError,
    Voice,
    generated_variant,
    get_synthesizer,
)

TEXT = "le petit chat noir mange une pomme rouge dans la grande maison"
# the hand-written variants and two generated ones (all 32 would only repeat the check, slowly)
CHECKED = list(SOURCE_VOICES) + list(GENERATED_VOICES[:2])


@pytest.fixture(scope="module")
def synth():
    return get_synthesizer()


def test_same_input_same_samples_whatever_came_before(synth):
    first = {v: synth.synthesize_int16(TEXT, Voice("fr", v, 160, 45)) for v in CHECKED}
    # speak other things with other settings in between, then again in another order
    for v in reversed(CHECKED):
        synth.synthesize_int16("bonjour à tous, il fait beau aujourd'hui", Voice("fr", v, 200, 70, 30))
        synth.synthesize_int16("the dog runs", TARGET_VOICE)
        assert np.array_equal(synth.synthesize_int16(TEXT, Voice("fr", v, 160, 45)), first[v]), v


def test_voices_sound_different(synth):
    mel = torchaudio.transforms.MelSpectrogram(ESPEAK_SAMPLE_RATE, n_fft=1024, hop_length=256, n_mels=40)
    spectra = {}
    for v in CHECKED:
        samples = synth.synthesize_int16(TEXT, Voice("fr", v))
        assert 0 < np.abs(samples.astype(int)).max() < 32767  # audible, never saturated
        spectra[v] = torch.log(mel(torch.from_numpy(samples.astype(np.float32) / 32768)) + 1e-5).mean(1)
    names = list(spectra)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            # mean log-mel spectrum differs by at least 0.1 nats per band on average
            assert (spectra[a] - spectra[b]).abs().mean() > 0.1, (a, b)


def test_rate_and_pitch_change_the_audio(synth):
    base = synth.synthesize_int16(TEXT, Voice("fr", "es-plain", 150, 50))
    fast = synth.synthesize_int16(TEXT, Voice("fr", "es-plain", 220, 50))
    high = synth.synthesize_int16(TEXT, Voice("fr", "es-plain", 150, 80))
    assert len(fast) < 0.8 * len(base)
    assert not np.array_equal(high[: len(base)], base[: len(high)])


def test_resampled_output(synth):
    wav = synth.synthesize("bonjour", Voice("fr", "es-bright"), 16000)
    raw = synth.synthesize_int16("bonjour", Voice("fr", "es-bright"))
    assert wav.dtype == torch.float32 and abs(wav.numel() - len(raw) * 16000 / ESPEAK_SAMPLE_RATE) <= 1


def test_errors(synth):
    with pytest.raises(TtsError, match="unknown voice variant"):
        synth.synthesize_int16("bonjour", Voice("fr", "nope"))
    with pytest.raises(TtsError, match="no voice"):
        synth.synthesize_int16("bonjour", Voice("xx-nolang", "es-plain"))
    with pytest.raises(TtsError, match="empty text"):
        synth.synthesize_int16("  ", Voice("fr", "es-plain"))


def test_generated_voices_are_fixed_and_keep_to_tract_and_pitch():
    assert len(GENERATED_VOICES) == 32 and len(set(map(tuple, map(generated_variant, GENERATED_VOICES)))) == 32
    assert VARIANTS["es-gen01"] == generated_variant("es-gen01")  # a function of the name alone
    tracts = []
    for name in GENERATED_VOICES:
        lines = generated_variant(name)
        # only pitch band and formant scaling: no breath, consonant strength or echo
        assert {line.split()[0] for line in lines} == {"gender", "flutter", "roughness", "pitch", "formant"}
        frequencies = [int(line.split()[2]) for line in lines if line.startswith("formant")]
        assert len(frequencies) == 5 and max(frequencies) - min(frequencies) <= 6
        tracts.append(sum(frequencies) / 5)
        # formants above espeak-ng's own for female voices, below for male ones (within the jitter of 3)
        assert tracts[-1] >= 101 if lines[0] == "gender female" else tracts[-1] <= 107
        low, high = (int(x) for x in lines[3].split()[1:])
        assert 65 <= low < high <= 1.6 * low
        assert lines[0] == ("gender female" if int(name[-2:]) % 2 else "gender male")
    assert min(tracts) < 92 and max(tracts) > 112  # the draws span the range, not one corner of it
    with pytest.raises(TtsError, match="unknown generated voice 'es-gen99'"):
        generated_variant("es-gen99")


def test_quality_voices_add_consonants_breath_and_echo():
    keys = [{line.split()[0] for line in generated_variant(name)} for name in QUALITY_VOICES]
    assert all("consonants" in k for k in keys)
    breathy, echoing = sum("breath" in k for k in keys), sum("echo" in k for k in keys)
    assert 8 <= breathy <= 24 and 4 <= echoing <= 20  # drawn with p = 0.5 and 0.3
    assert all(("breath" in k) == ("breathw" in k) for k in keys)
    assert (
        not set(QUALITY_VOICES) & set(SOURCE_VOICES)
        and len(set(map(tuple, map(generated_variant, QUALITY_VOICES)))) == 32
    )
    # each family is its own set of speakers, not the other's with qualities added
    assert all(generated_variant(q)[3] != generated_variant(g)[3] for q, g in zip(QUALITY_VOICES, GENERATED_VOICES))
