"""echostream-score on a fabricated fairseq-generate output."""

import pytest

from echostream_fairseq.cli.score import main, score_generate
from echostream_fairseq.data.text import edit_distance


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], [1, 2]) == 2
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0


def _write(tmp_path):
    res, data = tmp_path / "res", tmp_path / "data"
    (data / "text").mkdir(parents=True)
    res.mkdir()
    (data / "text" / "test.tsv").write_text(
        "id\tsrc_text\ttgt_text\nu1\tLe chat noir.\tThe black cat eats fish.\nu2\tUn chien\ta dog runs in the park\n",
        encoding="utf-8",
    )
    (res / "generate-test.txt").write_text(
        "T-0\t1 2 3 4\nH-0\t-1.0\t1 2 3 4\nT-1\t5 6\nH-1\t-2.0\t5 7 8\n", encoding="utf-8"
    )
    (res / "generate-test.text.txt").write_text(
        "ID-0\tu1\nASR-0\tle chat noir\nST-0\tthe black cat\nMT-0\t-0.5\tthe black cat eats fish\n"
        "ID-1\tu2\nASR-1\tun chat\nST-1\ta\nMT-1\t-0.7\ta dog runs in the park\n",
        encoding="utf-8",
    )
    return res, data


def test_scores_are_exact(tmp_path):
    res, data = _write(tmp_path)
    s = score_generate(res, data, "test")
    assert s["utterances"] == 2
    assert s["asr_wer"] == pytest.approx(100 * 1 / 5, abs=0.01)  # one substitution in five words
    assert s["unit_er"] == pytest.approx(100 * 2 / 6, abs=0.01)  # 5 6 -> 5 7 8: two edits
    assert s["mt_bleu"] == pytest.approx(100.0)


def test_missing_results_is_a_clear_error(tmp_path, capsys):
    _, data = _write(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["--results-path", str(tmp_path / "nowhere"), "--data", str(data)])
    assert e.value.code == 2
    assert "generate-test.txt: file not found" in capsys.readouterr().err


def test_pieces_to_words_joins_pieces_and_drops_every_special():
    from fairseq.data import Dictionary

    from echostream_fairseq.data.text import pieces_to_words

    d = Dictionary()
    for piece in ["\u2581le", "\u2581ch", "at", "\u2581noir"]:
        d.add_symbol(piece)
    ids = [
        d.bos(),
        d.index("\u2581le"),
        d.index("\u2581ch"),
        d.index("at"),
        d.unk(),
        d.index("\u2581noir"),
        d.eos(),
        d.pad(),
    ]
    assert pieces_to_words(d, ids) == ["le", "chat", "noir"]
