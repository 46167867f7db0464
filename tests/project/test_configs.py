"""The files of configs/: the templates and StreamSpeech's configs load as a corpus's own, and the
vocoder files are the presets."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from echostream_fairseq.tasks.configs import DataConfig, MultitaskConfig
from echostream_fairseq.vocoder.config import load_vocoder_config, preset_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_the_templates_load_in_a_prepared_corpus(corpus, tmp_path):
    folder = tmp_path / "corpus"
    shutil.copytree(corpus, folder)
    for name in ("config.yaml", "config_multitask.yaml"):
        shutil.copy(CONFIGS / "templates" / name, folder / name)
    data = DataConfig.load(folder / "config.yaml")
    assert data.global_cmvn_stats == folder / "gcmvn.npz" and data.units["num_units"] == 200
    tasks = MultitaskConfig.load(folder / "config_multitask.yaml")
    assert sorted(tasks.tasks) == ["ctc_target_unigram", "source_unigram", "target_unigram"] and not tasks.ignored


def test_streamspeech_configs_load_in_its_prepared_folder(streamspeech_data, tmp_path):
    folder = tmp_path / "fr-en"
    shutil.copytree(streamspeech_data.parent, folder)
    for name in ("config_gcmvn.yaml", "config_mtl_asr_st_ctcst.yaml"):
        shutil.copy(CONFIGS / "streamspeech" / "fr-en" / name, folder / "fbank2unit" / name)
    data = DataConfig.load(folder / "fbank2unit" / "config_gcmvn.yaml")
    assert data.global_cmvn_stats.resolve() == (folder / "gcmvn.npz").resolve() and data.units["num_units"] == 1000
    tasks = MultitaskConfig.load(folder / "fbank2unit" / "config_mtl_asr_st_ctcst.yaml")
    assert tasks.tasks["target_unigram"].decoder_args["decoder_embed_dim"] == 512 and not tasks.ignored
    # the three languages differ only in their dictionaries' names
    for lang in ("es", "de"):
        for name in ("config_gcmvn.yaml", "config_mtl_asr_st_ctcst.yaml"):
            text = (CONFIGS / "streamspeech" / f"{lang}-en" / name).read_text()
            assert yaml.safe_load(text) == yaml.safe_load(
                (CONFIGS / "streamspeech" / "fr-en" / name).read_text().replace("_fr.", f"_{lang}.")
            )


@pytest.mark.parametrize("path", sorted((CONFIGS / "vocoder").glob("*.json")), ids=lambda p: p.name)
def test_the_vocoder_files_are_the_presets(path):
    preset, generator, units = path.stem.split("_")
    assert json.loads(path.read_text()) == preset_config(preset, int(units[1:]), generator)
    assert load_vocoder_config(str(path))["num_embeddings"] == int(units[1:])
