"""Rooms and noise (data/rooms.py): draws seeded by the utterance id, noise of the stated colour
and level, rooms whose reverberation follows the draw, and the test rooms beyond training's."""

import numpy as np
import pytest

from echostream_fairseq.data.rooms import (
    NOISE_KINDS,
    TEST_ROOMS,
    TRAINING,
    Acoustics,
    apply_room,
    coloured_noise,
    draw,
    mix_at_snr,
    room_impulse_response,
)

RATE = 16000


def test_a_draw_is_fixed_by_the_key_and_within_its_ranges():
    assert draw("train_00007", TRAINING) == draw("train_00007", TRAINING)
    rooms = [draw(f"train_{i:05d}", TRAINING) for i in range(200)]
    assert len({r.seed for r in rooms}) == 200
    for r in rooms:
        for (lo, hi), x in zip(TRAINING.size, r.size):
            assert lo <= x <= hi
        for position in (r.source, r.microphone):
            assert all(TRAINING.wall_margin <= p <= d - TRAINING.wall_margin for p, d in zip(position, r.size))
        assert TRAINING.rt60[0] <= r.rt60 <= TRAINING.rt60[1] and TRAINING.snr_db[0] <= r.snr_db <= TRAINING.snr_db[1]
        assert (r.talkers > 0) == (r.noise == "babble")
    assert {r.noise for r in rooms} == set(NOISE_KINDS)  # every kind is drawn
    # the test rooms' ranges lie beyond training's: longer reverberation, lower SNR
    assert TEST_ROOMS.rt60[0] > TRAINING.rt60[1] and TEST_ROOMS.snr_db[1] <= TRAINING.snr_db[0]


@pytest.mark.parametrize(
    "changes, says",
    [
        (dict(noises=("pink", "traffic")), "noise kinds must be among"),
        (dict(rt60=(0.9, 0.3)), "rt60 range (0.9, 0.3) is empty"),
        (dict(size=((0.8, 3.0), (3.0, 4.0), (2.5, 3.0))), "every room dimension must exceed twice the wall margin"),
    ],
)
def test_bad_ranges_are_refused(changes, says):
    settings = dict(size=TRAINING.size, rt60=TRAINING.rt60, snr_db=TRAINING.snr_db)
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
        Acoustics(**{**settings, **changes})


@pytest.mark.parametrize("colour, slope_db_per_octave", [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_coloured_noise_has_unit_power_and_its_slope(colour, slope_db_per_octave):
    noise = coloured_noise(colour, 2**18, np.random.default_rng(0))
    assert np.mean(noise.astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-4)
    power = np.abs(np.fft.rfft(noise.astype(np.float64))) ** 2
    # mean power in octave bands from 125 Hz to 4 kHz (of 16 kHz audio)
    bins_per_hz = power.size / (RATE / 2)
    bands = [power[int(f * bins_per_hz) : int(2 * f * bins_per_hz)].mean() for f in (125, 250, 500, 1000, 2000, 4000)]
    slopes = np.diff(10 * np.log10(bands))
    assert np.abs(slopes - slope_db_per_octave).max() < 0.6


def test_noise_is_mixed_at_the_stated_snr():
    rng = np.random.default_rng(1)
    speech = (0.3 * rng.standard_normal(RATE)).astype(np.float32)
    noise = coloured_noise("pink", RATE, rng)
    for snr in (0.0, 7.5, 20.0):
        mixed = mix_at_snr(speech, noise, snr).astype(np.float64)
        added = mixed - speech
        assert 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(added**2)) == pytest.approx(
            snr, abs=0.01
        )
    with pytest.raises(ValueError, match="noise of"):
        mix_at_snr(speech, noise[:100], 5.0)


def test_rooms_reverberate_as_drawn_and_the_test_rooms_longer():
    import pyroomacoustics as pra

    def measured(key, acoustics):
        return pra.experimental.measure_rt60(room_impulse_response(draw(key, acoustics), RATE), fs=RATE, decay_db=30)

    train = [measured(f"train_{i}", TRAINING) for i in range(6)]
    test = [measured(f"test_room_{i}", TEST_ROOMS) for i in range(6)]
    assert min(test) > np.median(train) and np.median(test) > 1.5 * np.median(train)
    rir = room_impulse_response(draw("train_3", TRAINING), RATE)
    assert np.array_equal(rir, room_impulse_response(draw("train_3", TRAINING), RATE))
    assert np.argmax(np.abs(rir)) < 100  # the direct path first: the speech keeps its timing


def test_a_room_applied_is_reproducible_and_never_louder():
    rng = np.random.default_rng(2)
    speech = (0.5 * np.sin(np.arange(2 * RATE) * 2 * np.pi * 220 / RATE) * np.hanning(2 * RATE)).astype(np.float32)
    talkers = [(0.2 * rng.standard_normal(RATE)).astype(np.float32) for _ in range(8)]
    rooms = [draw(f"u{i}", TRAINING) for i in range(40)]
    babble = next(r for r in rooms if r.noise == "babble")
    pink = next(r for r in rooms if r.noise == "pink")
    for room in (babble, pink):
        a = apply_room(speech, room, RATE, talkers)
        assert a.shape == speech.shape and a.dtype == np.float32
        assert np.array_equal(a, apply_room(speech, room, RATE, talkers))
        assert np.abs(a).max() <= np.abs(speech).max() + 1e-6
        assert not np.allclose(a, speech, atol=1e-3)
    with pytest.raises(ValueError, match=f"this room's babble needs {babble.talkers} other utterances, got 2"):
        apply_room(speech, babble, RATE, talkers[:2])
    with pytest.raises(ValueError, match="speech must be mono"):
        apply_room(np.zeros((10, 2), np.float32), pink, RATE)
