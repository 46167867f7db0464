"""echostream-train-vocoder: losses fall, adversarial updates run, resuming is exact, and the
checkpoints it writes load as fairseq-format vocoders."""

import json
import math
import re

import pytest
import torch

from echostream_fairseq.cli.train_vocoder import main as train_main
from echostream_fairseq.vocoder import CodeHiFiGANUnitVocoder, preset_config
from echostream_fairseq.vocoder.trainer import TrainOptions, VocoderTrainer

NUM_UNITS = 50  # the session corpus fixture's K


def micro_training_config(**changes):
    config = preset_config("full", NUM_UNITS)
    config.update(
        {
            "upsample_initial_channel": 32,
            "resblock_kernel_sizes": [3],
            "resblock_dilation_sizes": [[1, 3, 5]],
            "embedding_dim": 8,
            "model_in_dim": 8,
            "dur_predictor_params": {
                "encoder_embed_dim": 8,
                "var_pred_hidden_dim": 8,
                "var_pred_kernel_size": 3,
                "var_pred_dropout": 0.5,
            },
            "batch_size": 4,
            "segment_size": 3200,
            "learning_rate": 2e-3,
            "mpd_periods": [2, 3],
            "mpd_channels": [4, 8, 8, 8, 8],
            "msd_scales": 2,
            "msd_channels": [4, 8, 8, 8, 8, 8],
            "adversarial_start_step": 10**6,
        }
    )
    config.update(changes)
    return config


def options(corpus, save_dir, max_updates, **kw):
    return TrainOptions(
        data=str(corpus),
        save_dir=str(save_dir),
        max_updates=max_updates,
        save_interval=2,
        log_interval=1,
        valid_utterances=2,
        progress=False,
        **kw,
    )


def test_a_few_updates_lower_the_validation_mel_loss(corpus, tmp_path):
    trainer = VocoderTrainer(micro_training_config(), options(corpus, tmp_path / "v", 12))
    before = trainer.validate()
    losses = [trainer.update() for _ in range(12)]
    after = trainer.validate()
    assert after < 0.85 * before, (before, after)
    assert losses[-1]["mel"] < losses[0]["mel"]
    assert losses[-1]["dur"] < losses[0]["dur"]


def test_adversarial_updates_train_the_discriminators(corpus, tmp_path):
    trainer = VocoderTrainer(micro_training_config(adversarial_start_step=1), options(corpus, tmp_path / "v", 3))
    first = {k: v.clone() for k, v in trainer.mpd.state_dict().items()}
    assert set(trainer.update()) == {"mel", "dur"}
    assert all(torch.equal(v, trainer.mpd.state_dict()[k]) for k, v in first.items())
    losses = trainer.update()
    assert set(losses) == {"mel", "dur", "disc", "adv", "fm"} and all(math.isfinite(v) for v in losses.values())
    assert not all(torch.equal(v, trainer.mpd.state_dict()[k]) for k, v in first.items())


def test_resuming_gives_the_same_weights_as_training_straight_through(corpus, tmp_path):
    config = micro_training_config(adversarial_start_step=2)
    VocoderTrainer(config, options(corpus, tmp_path / "straight", 4)).train()
    VocoderTrainer(config, options(corpus, tmp_path / "resumed", 2)).train()
    resumed = VocoderTrainer(config, options(corpus, tmp_path / "resumed", 4))
    assert resumed.step == 2
    resumed.train()
    a = torch.load(tmp_path / "straight" / "checkpoint_last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint_last.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for part in ("generator", "mpd", "msd"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)
    log = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and "disc" in log[-1] and "valid_mel_l1" in log[-1]


def test_written_generator_loads_as_a_fairseq_vocoder(corpus, tmp_path):
    save = tmp_path / "v"
    trainer = VocoderTrainer(micro_training_config(), options(corpus, save, 2))
    trainer.train()
    vocoder = CodeHiFiGANUnitVocoder.from_files(str(save / "generator.pt"), str(save / "config.json"))
    units = torch.tensor([3, 9, 9, 4])
    trainer.generator.eval()
    with torch.no_grad():
        expected = trainer.generator(code=units[None]).reshape(-1)
    assert torch.allclose(vocoder(units), expected, atol=1e-5)
    assert vocoder(units[:3], dur_prediction=True).numel() % 320 == 0


def test_cli_trains_a_causal_generator_that_loads_and_streams_as_one(corpus, tmp_path, capsys):
    """--causal --lookahead-frames: the config says so, the loaded vocoder is causal, and its
    frames stepped in pieces equal the trainer's own generator over the whole sequence."""
    config = tmp_path / "micro.json"
    config.write_text(json.dumps(micro_training_config()))
    save = tmp_path / "v"
    assert (
        train_main(
            [
                "--data",
                str(corpus),
                "--save-dir",
                str(save),
                "--config",
                str(config),
                "--no-progress",
                "--threads",
                "1",
                "--max-updates",
                "2",
                "--causal",
                "--lookahead-frames",
                "2",
            ]
        )
        == 0
    )
    written = json.loads((save / "config.json").read_text())
    assert written["causal"] is True and written["lookahead_frames"] == 2
    assert written["units"] == {"extractor": "logmel", "num_units": NUM_UNITS}  # the corpus's units, recorded
    vocoder = CodeHiFiGANUnitVocoder.from_files(str(save / "generator.pt"), str(save / "config.json"))
    assert vocoder.causal and vocoder.lookahead_frames == 2 and str(vocoder.units_kind) == "log-mel k-means units, K=50"
    frames = torch.randint(0, NUM_UNITS, (1, 21))
    whole = vocoder.synthesize_frames(frames[0])
    state, pieces = vocoder.initial_stream_state()[None], []
    for start, end in [(0, 5), (5, 19)]:
        audio, state = vocoder.synthesize_step(
            frames[:, start : end + 2], torch.tensor([end - start]), torch.tensor([2]), state
        )
        pieces.append(audio[0])
    audio, _ = vocoder.synthesize_step(
        torch.nn.functional.pad(frames[:, 19:], (0, 2)), torch.tensor([2]), torch.tensor([0]), state
    )
    assert torch.allclose(torch.cat(pieces + [audio[0]]), whole, atol=1e-5)
    assert (
        train_main(
            [
                "--data",
                str(corpus),
                "--save-dir",
                str(tmp_path / "w"),
                "--config",
                str(config),
                "--max-updates",
                "1",
                "--lookahead-frames",
                "2",
            ]
        )
        == 2
    )
    assert "lookahead_frames 2 needs causal true" in capsys.readouterr().err


def test_cli_trains_resumes_and_refuses_another_config(corpus, tmp_path, capsys):
    config = tmp_path / "micro.json"
    config.write_text(json.dumps(micro_training_config()))
    save = tmp_path / "v"
    common = [
        "--data",
        str(corpus),
        "--save-dir",
        str(save),
        "--config",
        str(config),
        "--no-progress",
        "--threads",
        "1",
        "--save-interval",
        "1",
    ]
    assert train_main(common + ["--max-updates", "1"]) == 0
    assert train_main(common + ["--max-updates", "2"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2
    assert train_main(common + ["--max-updates", "3", "--batch-size", "2"]) == 2
    assert "holds a run with another config (differs in batch_size)" in capsys.readouterr().err
    bad = json.loads(config.read_text())
    bad["num_embeddings"] = 60
    config.write_text(json.dumps(bad))
    assert train_main(common[:3] + [str(tmp_path / "w"), "--config", str(config), "--max-updates", "1"]) == 2
    assert "num_embeddings 60 but" in capsys.readouterr().err
    assert train_main(["--data", str(tmp_path / "nowhere"), "--save-dir", str(tmp_path / "x")]) == 2
    assert "units/kmeans.pt: not found" in capsys.readouterr().err


def test_vocoder_benchmark_writes_its_tables(corpus, tmp_path, capsys):
    from echostream_bench.vocoder import main as bench_main

    save = tmp_path / "v"
    VocoderTrainer(micro_training_config(), options(corpus, save, 1)).train()
    out = tmp_path / "bench"
    assert (
        bench_main(
            [
                "--data",
                str(corpus),
                "--vocoder",
                str(save / "generator.pt"),
                "--vocoder-cfg",
                str(save / "config.json"),
                "--out",
                str(out),
                "--limit",
                "2",
                "--positions",
                "1,2",
                "--peer-max-position",
                "2",
                "--skip-full-size",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    result = json.loads((out / "bench_vocoder.json").read_text())
    assert set(result["rtf"]) == {"griffin_lim", "hifigan_trained"}
    for name in result["rtf"]:
        assert result["rtf"][name]["one_shot"] > 0 and result["rtf"][name]["incremental"] > 0
        for row in result["per_call_ms"][name].values():
            assert row["incremental_ms"] > 0 and row["peer_ms"] > 0
    assert set(result["wer"]) == {
        "original espeak-ng audio",
        "griffin_lim one_shot",
        "griffin_lim incremental",
        "hifigan_trained one_shot",
        "hifigan_trained incremental",
    }
    assert all(0 <= r["wer"] <= 100 * r["reference_words"] for r in result["wer"].values())
    # one update of a micro generator renders far worse than Griffin-Lim from the centroids
    assert set(result["mel_distance"]) == {"griffin_lim", "hifigan_trained"}
    assert 0 < result["mel_distance"]["griffin_lim"] < result["mel_distance"]["hifigan_trained"]
    table = (out / "bench_vocoder.md").read_text()
    assert "| griffin_lim |" in table and "pocketsphinx WER" in table and "log-mel L1" in table
    assert len(list((out / "wavs" / "griffin_lim_one_shot").glob("*.wav"))) == 2


def test_embeddings_start_as_the_standardised_centroids(corpus, tmp_path):
    from echostream_fairseq.data.units import load_unit_model
    from echostream_fairseq.vocoder.config import VocoderError

    centroids = load_unit_model(str(corpus / "units" / "kmeans.pt"))["centroids"].float()
    dim = centroids.shape[1]
    config = micro_training_config(
        embedding_dim=dim,
        model_in_dim=dim,
        embedding_init="centroids",
        dur_predictor_params={
            "encoder_embed_dim": dim,
            "var_pred_hidden_dim": 8,
            "var_pred_kernel_size": 3,
            "var_pred_dropout": 0.5,
        },
    )
    table = VocoderTrainer(config, options(corpus, tmp_path / "c", 1)).generator.dict.weight
    expected = (centroids - centroids.mean(0)) / centroids.std(0)
    assert torch.allclose(table, expected, atol=1e-5)
    assert torch.allclose(table.mean(0), torch.zeros(dim), atol=1e-5)
    # the preset asks for it; a table of another width is refused with both shapes named
    assert preset_config("tiny", NUM_UNITS)["embedding_init"] == "centroids"
    with pytest.raises(
        VocoderError, match=re.escape(f"centroids are ({NUM_UNITS}, {dim}), the embedding table ({NUM_UNITS}, 8)")
    ):
        VocoderTrainer(micro_training_config(embedding_init="centroids"), options(corpus, tmp_path / "d", 1))
    with pytest.raises(VocoderError, match="embedding_init 'kmeans' is not one of random, centroids"):
        VocoderTrainer(micro_training_config(embedding_init="kmeans"), options(corpus, tmp_path / "e", 1))
