"""k-means, unit de-duplication, unit model files and the HuBERT unit extractor."""

import os

import numpy as np
import pytest
import torch

from echostream_fairseq.common.units_kind import UnitsKind
from echostream_fairseq.data.kmeans import fit_kmeans, nearest_centroid
from echostream_fairseq.data.units import (
    HubertUnitFeatures,
    LogMelUnitFeatures,
    UnitError,
    convert_pickled_kmeans,
    deduplicate,
    frame_units,
    load_kmeans_centroids,
    load_unit_model,
    unit_model_dict,
)
from echostream_fairseq.tasks.configs import DataConfig


def _blobs(seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(5, 4, generator=g) * 10
    labels = torch.arange(5).repeat_interleave(200)
    return centres[labels] + torch.randn(1000, 4, generator=g), labels, centres


def test_kmeans_recovers_separated_clusters_and_is_seeded():
    points, labels, centres = _blobs()
    result = fit_kmeans(points, 5, seed=3, progress=False)
    assert result.inertia < 5.0  # unit variance per dimension, 4 dimensions
    assignment, _ = nearest_centroid(points, result.centroids)
    # each true cluster maps to exactly one centroid
    for k in range(5):
        assert assignment[labels == k].unique().numel() == 1
    again = fit_kmeans(points, 5, seed=3, progress=False)
    assert torch.equal(result.centroids, again.centroids)


def test_kmeans_errors():
    with pytest.raises(ValueError, match="at least as many frames as clusters"):
        fit_kmeans(torch.randn(3, 2), 5, progress=False)
    bad = torch.randn(10, 2)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fit_kmeans(bad, 2, progress=False)


def test_kmeans_with_duplicate_points_fills_every_cluster():
    points = torch.cat([torch.zeros(50, 3), torch.ones(50, 3)])
    result = fit_kmeans(points, 4, seed=1, progress=False)
    assert torch.isfinite(result.centroids).all() and result.inertia == pytest.approx(0.0, abs=1e-6)


def test_deduplicate():
    assert deduplicate([5, 5, 7, 5, 5, 5]) == ([5, 7, 5], [2, 1, 3])
    assert deduplicate([]) == ([], [])


def test_logmel_frames_are_320_samples():
    features = LogMelUnitFeatures()
    for n in (1, 319, 320, 16000, 16321):
        assert features(torch.randn(n) * 0.1).shape == (1 + n // 320, 80)


def test_unit_model_file(tmp_path):
    centroids = torch.randn(4, 80)
    runs = [(0, 2), (1, 1), (0, 4), (2, 3)]
    model = unit_model_dict("logmel", centroids, LogMelUnitFeatures().describe(), runs, seed=1)
    torch.save(model, tmp_path / "kmeans.pt")
    loaded = load_unit_model(str(tmp_path / "kmeans.pt"))  # weights_only
    assert loaded["num_units"] == 4 and loaded["feature_config"]["hop_length"] == 320
    assert loaded["mean_duration"].tolist() == pytest.approx([3.0, 1.0, 3.0, 2.5])  # unit 3 unseen: overall mean
    assert loaded["unit_runs"].tolist() == [2, 1, 1, 0]


def test_load_kmeans_centroids_formats(tmp_path):
    c = np.random.RandomState(0).randn(6, 8).astype(np.float32)
    np.save(tmp_path / "c.npy", c)
    torch.save({"centroids": torch.from_numpy(c)}, tmp_path / "c.pt")
    torch.save(torch.from_numpy(c), tmp_path / "t.pt")
    for name in ("c.npy", "c.pt", "t.pt"):
        assert torch.equal(load_kmeans_centroids(str(tmp_path / name)), torch.from_numpy(c))
    np.save(tmp_path / "bad.npy", np.zeros(3))
    with pytest.raises(UnitError, match=r"bad.npy: centroids must be \[K, D\]"):
        load_kmeans_centroids(str(tmp_path / "bad.npy"))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(UnitError, match="junk.pt: cannot read the k-means model"):
        load_kmeans_centroids(str(tmp_path / "junk.pt"))
    with pytest.raises(UnitError, match="missing.npy: k-means model not found"):
        load_kmeans_centroids(str(tmp_path / "missing.npy"))


@pytest.mark.parametrize("name", ["km.bin", "mhubert.km1000.layer11.pt"])
def test_a_pickled_sklearn_kmeans_is_converted_explicitly_never_unpickled_implicitly(tmp_path, capsys, name):
    """fairseq's km.bin and StreamSpeech's .pt are sklearn pickles: loading one names the conversion,
    and ``echostream-prep convert-kmeans`` (which says it unpickles) writes centroids that load."""
    from echostream_fairseq.cli.prep import main

    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    joblib = pytest.importorskip("joblib")
    points = np.random.RandomState(0).randn(100, 8)
    km = sklearn_cluster.KMeans(n_clusters=3, n_init=1, random_state=0).fit(points)
    joblib.dump(km, tmp_path / name)
    with pytest.raises(
        UnitError, match=rf"{name}: not a .npy or a weights-only .pt; .*`echostream-prep convert-kmeans"
    ):
        load_kmeans_centroids(str(tmp_path / name))
    main(["convert-kmeans", "--kmeans-model", str(tmp_path / name), "--out", str(tmp_path / "km.npy")])
    captured = capsys.readouterr()
    assert f"unpickling {tmp_path / name} (this runs code from the file)" in captured.err
    assert "km.npy: 3 centroids of 8 dimensions" in captured.out
    assert torch.allclose(
        load_kmeans_centroids(str(tmp_path / "km.npy")), torch.tensor(km.cluster_centers_, dtype=torch.float32)
    )
    joblib.dump({"not": "a k-means"}, tmp_path / "dict.bin")
    with pytest.raises(UnitError, match="dict.bin: unpickled a dict, which has no cluster_centers_"):
        convert_pickled_kmeans(str(tmp_path / "dict.bin"), str(tmp_path / "out.npy"))
    with pytest.raises(UnitError, match="out.txt: the converted centroids are written as .npy"):
        convert_pickled_kmeans(str(tmp_path / name), str(tmp_path / "out.txt"))


def make_tiny_hubert(folder: str, keep_dictionary: bool = False) -> str:
    """A randomly initialised 2-layer fairseq HuBERT (dim 32, 320x downsampling) saved as a checkpoint."""
    from fairseq.models.hubert.hubert import HubertConfig, HubertModel
    from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig, HubertPretrainingTask
    from omegaconf import OmegaConf

    label_dir = os.path.join(folder, "labels")
    os.makedirs(label_dir, exist_ok=True)
    with open(os.path.join(label_dir, "dict.km.txt"), "w") as f:
        f.writelines(f"{i} 1\n" for i in range(12))
    task_cfg = HubertPretrainingConfig(data=label_dir, labels=["km"], label_rate=50.0, sample_rate=16000)
    model_cfg = HubertConfig(
        label_rate=50.0,
        conv_feature_layers="[(32,10,5)] + [(32,3,2)]*4 + [(32,2,2)]*2",
        encoder_layers=2,
        encoder_embed_dim=32,
        encoder_ffn_embed_dim=64,
        encoder_attention_heads=2,
        final_dim=16,
        conv_pos=16,
        conv_pos_groups=4,
    )
    torch.manual_seed(0)
    model = HubertModel(model_cfg, task_cfg, HubertPretrainingTask(task_cfg).dictionaries)
    cfg = OmegaConf.create({"model": OmegaConf.structured(model_cfg), "task": OmegaConf.structured(task_cfg)})
    cfg.model._name, cfg.task._name = "hubert", "hubert_pretraining"
    path = os.path.join(folder, "hubert_tiny.pt")
    torch.save(
        {  # the layout fairseq's save_checkpoint writes
            "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
            "args": None,
            "model": model.state_dict(),
            "optimizer_history": [
                {"criterion_name": "hubert", "optimizer_name": "adam", "lr_scheduler_state": {}, "num_updates": 0}
            ],
            "extra_state": {"train_iterator": None},
        },
        path,
    )
    if not keep_dictionary:  # as on a user's machine: the training folder is elsewhere
        os.remove(os.path.join(label_dir, "dict.km.txt"))
    return path


def test_hubert_features(tmp_path):
    from fairseq import checkpoint_utils

    path = make_tiny_hubert(str(tmp_path), keep_dictionary=True)
    reference = checkpoint_utils.load_model_ensemble_and_task([path])[0][0].eval()
    os.remove(tmp_path / "labels" / "dict.km.txt")
    extractor = HubertUnitFeatures(path, layer=1)
    wav = torch.randn(16000) * 0.1
    feats = extractor(wav)
    assert feats.shape == (49, 32) and extractor.dim == 32
    with torch.no_grad():
        expected, _ = reference.extract_features(wav.unsqueeze(0), padding_mask=None, mask=False, output_layer=1)
    assert torch.allclose(feats, expected[0], atol=1e-5)
    centroids = torch.randn(7, 32)
    assert frame_units(feats, centroids).max() < 7
    with pytest.raises(UnitError, match="--hubert-layer must be in 1..2"):
        HubertUnitFeatures(path, layer=5)
    with pytest.raises(UnitError, match="features have 32 dimensions but the k-means centroids have 8"):
        frame_units(feats, torch.randn(3, 8))


def test_hubert_bad_checkpoint(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UnitError, match="bad.pt: cannot load the HuBERT checkpoint"):
        HubertUnitFeatures(str(tmp_path / "bad.pt"), 1)
    with pytest.raises(UnitError, match="none.pt: HuBERT checkpoint not found"):
        HubertUnitFeatures(str(tmp_path / "none.pt"), 1)


def test_prep_with_hubert_units(tmp_path, capsys):
    from echostream_fairseq.cli.prep import main
    from echostream_fairseq.data.audio import read_audio
    from echostream_fairseq.data.manifest import read_tsv

    checkpoint = make_tiny_hubert(str(tmp_path))
    centroids = np.random.RandomState(1).randn(7, 32).astype(np.float32)
    np.save(tmp_path / "km.npy", centroids)
    out = tmp_path / "out"
    args = [
        "synthetic",
        "--out",
        str(out),
        "--num-train",
        "6",
        "--num-dev",
        "2",
        "--num-test",
        "2",
        "--no-progress",
        "--unit-extractor",
        "hubert",
        "--hubert-checkpoint",
        checkpoint,
        "--hubert-layer",
        "2",
    ]
    main(args + ["--kmeans-model", str(tmp_path / "km.npy")])
    model = torch.load(out / "units" / "kmeans.pt", weights_only=True)
    assert model["extractor"] == "hubert" and model["num_units"] == 7
    assert torch.equal(model["centroids"], torch.from_numpy(centroids))
    assert model["feature_config"]["layer"] == 2
    # the data config records the kind of the units
    kind = DataConfig.load(out / "config.yaml").units_kind()
    assert kind == UnitsKind("hubert", 7, 2, "hubert_tiny.pt") and str(kind) == (
        "HuBERT layer 2 of hubert_tiny.pt k-means units, K=7"
    )
    row = read_tsv(out / "train.tsv", ("id", "tgt_audio"))[0]
    extractor = HubertUnitFeatures(checkpoint, 2)
    units = frame_units(extractor(read_audio(out / "audio" / "tgt" / f"{row['id']}.wav")), torch.from_numpy(centroids))
    assert row["tgt_audio"] == " ".join(map(str, deduplicate(units.tolist())[0]))
    assert (out / "units" / "dict.txt").read_text().splitlines() == [f"{i} 1" for i in range(7)]

    np.save(tmp_path / "km16.npy", np.zeros((5, 16), np.float32))
    with pytest.raises(SystemExit) as info:
        main(args[:2] + [str(tmp_path / "out2")] + args[3:] + ["--kmeans-model", str(tmp_path / "km16.npy")])
    assert info.value.code == 2
    assert "km16.npy: centroids have 16 dimensions but HuBERT layer 2 gives 32" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(
            args[:2]
            + [str(tmp_path / "out3")]
            + args[3:]
            + ["--kmeans-model", str(tmp_path / "km.npy"), "--num-units", "9"]
        )
    assert "--num-units 9 but" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args[:2] + [str(tmp_path / "out4")] + args[3:])
    assert "--unit-extractor hubert needs --kmeans-model" in capsys.readouterr().err
