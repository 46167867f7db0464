"""Strict TSV reading (file:line errors), cross-file id checks and TSV writing."""

import pytest

from echostream_fairseq.data.manifest import ManifestError, check_same_ids, read_tsv, write_tsv

COLUMNS = ("id", "src_audio", "tgt_text")


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_rows_with_line_numbers(tmp_path):
    p = _write(tmp_path / "m.tsv", "id\tsrc_audio\ttgt_text\textra\r\na\tx.wav\thello world\t\n\nb\ty.wav\tbye\tz\n")
    rows = read_tsv(p, COLUMNS)
    assert [r["id"] for r in rows] == ["a", "b"]
    assert [r["_line"] for r in rows] == [2, 4]
    assert rows[0]["tgt_text"] == "hello world" and rows[0]["extra"] == ""


@pytest.mark.parametrize(
    "text, message",
    [
        ("", r"m.tsv:1: empty file"),
        ("id\tsrc_audio\n", r"m.tsv:1: missing column\(s\) \['tgt_text'\]"),
        ("id\tsrc_audio\ttgt_text\na\tx.wav\n", r"m.tsv:2: expected 3 tab-separated fields"),
        ("id\tsrc_audio\ttgt_text\na\tx.wav\thi\nb\ty.wav\t  \n", r"m.tsv:3: empty transcript in column 'tgt_text'"),
        ("id\tsrc_audio\ttgt_text\na\t\thi\n", r"m.tsv:2: empty field in column 'src_audio'"),
        (
            "id\tsrc_audio\ttgt_text\na\tx.wav\thi\nb\ty.wav\tho\na\tz.wav\tha\n",
            r"m.tsv:4: duplicate id 'a' \(first on line 2\)",
        ),
        ("id\tid\ttgt_text\n", r"m.tsv:1: duplicate column names \['id'\]"),
    ],
)
def test_errors_name_file_and_line(tmp_path, text, message):
    p = _write(tmp_path / "m.tsv", text)
    with pytest.raises(ManifestError, match=message):
        read_tsv(p, COLUMNS)


def test_missing_file(tmp_path):
    with pytest.raises(ManifestError, match=r"nope.tsv: file not found"):
        read_tsv(tmp_path / "nope.tsv", COLUMNS)


def test_headerless_file(tmp_path):
    p = _write(tmp_path / "c.tsv", "clip1.mp3\tHello.\nclip2.mp3\tBye.\n")
    rows = read_tsv(p, ("clip", "translation"), header=("clip", "translation"), id_column="clip")
    assert [(r["clip"], r["_line"]) for r in rows] == [("clip1.mp3", 1), ("clip2.mp3", 2)]


def test_check_same_ids_names_both_files(tmp_path):
    a = read_tsv(_write(tmp_path / "a.tsv", "id\tv\nx\t1\ny\t2\n"), ("id", "v"))
    b = read_tsv(_write(tmp_path / "b.tsv", "id\tv\nx\t1\nz\t2\n"), ("id", "v"))
    with pytest.raises(ManifestError) as info:
        check_same_ids(a, tmp_path / "a.tsv", b, tmp_path / "b.tsv")
    message = str(info.value)
    assert f"{tmp_path / 'a.tsv'}:3: 1 id(s) not in {tmp_path / 'b.tsv'}: 'y'" in message
    assert f"{tmp_path / 'b.tsv'}:3: 1 id(s) not in {tmp_path / 'a.tsv'}: 'z'" in message
    check_same_ids(a, "a", a, "a2")
    reordered = list(reversed(a))
    check_same_ids(a, "a", reordered, "r")
    with pytest.raises(ManifestError, match="same order"):
        check_same_ids(a, "a", reordered, "r", same_order=True)


def test_write_tsv_rejects_tabs(tmp_path):
    with pytest.raises(ManifestError, match="holds a tab or newline"):
        write_tsv(tmp_path / "t.tsv", ("id", "text"), [{"id": "a", "text": "x\ty"}])
    assert list(tmp_path.iterdir()) == []  # no file, and no temporary file left
