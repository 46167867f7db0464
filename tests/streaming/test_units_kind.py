"""Units carry their kind: a vocoder of other units than the model's is refused when the translator
loads, though their counts agree."""

from types import SimpleNamespace

import pytest

from echostream_fairseq.common.units_kind import UnitsKind
from echostream_fairseq.streaming.loading import check_units
from echostream_fairseq.vocoder.griffin_lim import GriffinLimUnitVocoder


def test_kinds_compare_by_extractor_count_and_layer():
    logmel, hubert = UnitsKind("logmel", 1000), UnitsKind("hubert", 1000, 11, "mhubert_base_vp_en_es_fr_it3.pt")
    assert logmel.mismatch(UnitsKind("logmel", 1000)) is None
    assert hubert.mismatch(UnitsKind("hubert", 1000, 11)) is None  # the model named on one side only
    assert logmel.mismatch(hubert) == (
        "log-mel k-means units, K=1000 against HuBERT layer 11 of mhubert_base_vp_en_es_fr_it3.pt k-means units, K=1000"
    )
    assert hubert.mismatch(UnitsKind("hubert", 1000, 9)) is not None
    assert UnitsKind.from_dict(hubert.to_dict(), "x") == hubert
    with pytest.raises(ValueError, match="hubert units need their layer"):
        UnitsKind("hubert", 10)
    with pytest.raises(ValueError, match="config.json: units kind .*must be one of"):
        UnitsKind.from_dict({"extractor": "mfcc", "num_units": 3}, "config.json")


def test_the_translator_refuses_a_vocoder_of_other_units(loaded, corpus):
    _, task = loaded
    griffin_lim = GriffinLimUnitVocoder.from_file(str(corpus / "units" / "kmeans.pt"))
    kind = task.data_cfg.units_kind()
    assert kind == griffin_lim.units_kind == UnitsKind("logmel", 50)  # prep recorded it; the unit model says it
    check_units(task, SimpleNamespace(vocoder=griffin_lim))
    hubert = SimpleNamespace(num_units=50, units_kind=UnitsKind("hubert", 50, 11))
    with pytest.raises(
        ValueError, match="the model's units and the vocoder's differ: log-mel k-means units, K=50 against HuBERT"
    ):
        check_units(task, SimpleNamespace(vocoder=hubert))
    unknown = SimpleNamespace(num_units=50, units_kind=None)  # a vocoder whose config does not say: the count only
    check_units(task, SimpleNamespace(vocoder=unknown))
    with pytest.raises(ValueError, match="the vocoder knows 20 units but the model emits 50"):
        check_units(task, SimpleNamespace(vocoder=SimpleNamespace(num_units=20, units_kind=None)))
