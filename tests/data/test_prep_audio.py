"""Audio reading, resampling, downmixing, fbank features and their error messages."""

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF

from echostream_fairseq.data.audio import AudioError, fbank, num_fbank_frames, read_audio, write_wav


def _tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_reads_16k_mono_unchanged(tmp_path):
    x = _tone(0.5, 16000)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    y = read_audio(tmp_path / "a.wav")
    assert y.dtype == torch.float32 and y.shape == (8000,)
    assert torch.allclose(y, torch.from_numpy(x))


def test_downmixes_and_resamples_stereo_44k(tmp_path):
    left, right = _tone(0.5, 44100, 440), _tone(0.5, 44100, 660)
    sf.write(tmp_path / "s.flac", np.stack([left, right], 1), 44100)
    y = read_audio(tmp_path / "s.flac")
    data, _ = sf.read(tmp_path / "s.flac", dtype="float32", always_2d=True)
    expected = AF.resample(torch.from_numpy(data.mean(1)), 44100, 16000)
    assert y.shape == expected.shape == (8000,)
    assert torch.allclose(y, expected.clamp(-1, 1), atol=1e-6)


def test_upsamples_8k(tmp_path):
    sf.write(tmp_path / "n.wav", _tone(1.0, 8000), 8000)
    assert read_audio(tmp_path / "n.wav").shape == (16000,)


def test_mp3_if_libsndfile_supports_it(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip("libsndfile without mp3")
    sf.write(tmp_path / "c.mp3", _tone(1.0, 48000), 48000, format="MP3")
    y = read_audio(tmp_path / "c.mp3")
    assert abs(y.numel() - 16000) < 1200 and y.abs().max() > 0.1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "audio file not found"),
        (lambda p: p.write_text("not audio"), "cannot read audio"),
        (lambda p: sf.write(p, np.zeros((0, 1), np.float32), 16000), "audio has no samples"),
        (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2], np.float32), 16000, subtype="FLOAT"), "NaN or inf"),
    ],
)
def test_bad_audio_names_the_file(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as info:
        read_audio(path)
    assert str(path) in str(info.value)


def test_fbank_matches_kaldi_and_frame_count():
    wav = torch.from_numpy(_tone(1.234, 16000)) + 0.01 * torch.randn(19744)
    feats = fbank(wav)
    assert feats.shape == (num_fbank_frames(wav.numel()), 80)
    # kaldi's steps in another order (DC removal after pre-emphasis, the int16 scale in the
    # window): as close to kaldi's in float64 as kaldi's own float32 is (both about 3e-4 here)
    exact = kaldi.fbank(wav.double().unsqueeze(0) * 32768, num_mel_bins=80, frame_length=25, frame_shift=10, dither=0.0)
    ref = kaldi.fbank(wav.unsqueeze(0) * 32768, num_mel_bins=80, frame_length=25, frame_shift=10, dither=0.0)
    assert (feats.double() - exact).abs().max() < 1e-3 and (ref.double() - exact).abs().max() < 1e-3
    torch.testing.assert_close(feats, ref, rtol=0, atol=1e-3)
    silence = fbank(torch.zeros(800))  # the log floor, as kaldi's
    assert torch.equal(silence, kaldi.fbank(torch.zeros(1, 800), num_mel_bins=80, dither=0.0))


@pytest.mark.parametrize("n, frames", [(0, 0), (399, 0), (400, 1), (559, 1), (560, 2), (16000, 98)])
def test_num_fbank_frames(n, frames):
    assert num_fbank_frames(n) == frames
    if n:
        assert fbank(torch.zeros(n) + 0.01).shape[0] == frames


def test_write_wav_round_trip(tmp_path):
    wav = torch.from_numpy(_tone(0.25, 16000))
    write_wav(tmp_path / "w.wav", wav)
    info = sf.info(tmp_path / "w.wav")
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert (read_audio(tmp_path / "w.wav") - wav).abs().max() <= 0.5 / 32768 + 1e-7


def test_mp3_hint_when_libsndfile_lacks_mp3(tmp_path, monkeypatch):
    path = tmp_path / "clip.mp3"
    path.write_bytes(b"\xff\xfb\x90\x00" + b"\x00" * 64)  # an mp3 frame header and nothing decodable
    monkeypatch.setattr(sf, "available_formats", lambda: {"WAV": "WAV", "FLAC": "FLAC"})
    with pytest.raises(AudioError, match=r"clip.mp3: cannot read audio .*cannot decode mp3: install soundfile>=0.12"):
        read_audio(path)
