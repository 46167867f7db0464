import pytest


@pytest.fixture(scope="module")
def exported(loaded, tmp_path_factory):
    """The ``loaded`` checkpoint's encoder-step graphs (fp32 and int8) in a folder."""
    from echostream_fairseq.export.onnx_files import export_encoder
    from echostream_fairseq.streaming.setup import Dictionaries

    model, task = loaded
    d = Dictionaries.of_task(task)
    folder = tmp_path_factory.mktemp("graphs")
    export_encoder(model.eval(), d.source, d.st, folder)
    return folder
