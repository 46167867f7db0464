"""Tab-separated manifests: strict reading, cross-file id checks and atomic writing.

Every problem is reported as :class:`ManifestError` with ``"{path}:{line_no}: <problem>"`` so a
user can jump to the offending line. :func:`write_tsv` writes through
:func:`echostream_fairseq.common.files.atomic_open`, so an interrupted run never leaves a
half-written manifest under a name that a later step would trust.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from echostream_fairseq.common.files import atomic_open

__all__ = [
    "ManifestError",
    "read_tsv",
    "check_same_ids",
    "write_tsv",
]

PathLike = Union[str, "os.PathLike[str]"]


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and, where it can, the line."""


def read_tsv(
    path: PathLike,
    required_columns: Sequence[str],
    *,
    header: Optional[Sequence[str]] = None,
    id_column: Optional[str] = "id",
    allow_empty: Sequence[str] = (),
) -> List[Dict[str, Any]]:
    """Read a tab-separated file into one dict per data line.

    Fields are split on tabs only (no quoting: transcripts may hold quotes), and a trailing ``\\r``
    is dropped. Blank lines are skipped.

    Args:
        path: the file.
        required_columns: columns that must exist; their fields must be non-empty (unless listed
            in ``allow_empty``).
        header: column names for a file without a header line (e.g. CVSS's ``{split}.tsv``);
            ``None`` means the first line is the header.
        id_column: column whose values must be unique in the file (``None``: no check; a column
            that the file lacks is not checked either).
        allow_empty: required columns that may be empty.

    Returns:
        ``[{column: field, ..., "_line": line_no}]``: every column of the file as ``str`` plus
        ``_line``, the 1-based line number (``int``) of the row.

    Raises:
        ManifestError: missing file, missing header or column, wrong field count, empty required
            field, duplicate id.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        raise ManifestError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ManifestError(f"{path}: cannot read ({e.strerror})") from None

    numbered = [(no, line[:-1] if line.endswith("\r") else line) for no, line in enumerate(lines, 1)]
    numbered = [(no, line) for no, line in numbered if line.strip()]
    if header is None:
        if not numbered:
            raise ManifestError(f"{path}:1: empty file, expected a header line with columns {list(required_columns)}")
        header_line, header_text = numbered[0]
        columns = header_text.split("\t")
        body = numbered[1:]
        duplicate_columns = sorted({c for c in columns if columns.count(c) > 1})
        if duplicate_columns:
            raise ManifestError(f"{path}:{header_line}: duplicate column names {duplicate_columns}")
    else:
        header_line, columns, body = 1, list(header), numbered
    missing = [c for c in required_columns if c not in columns]
    if missing:
        raise ManifestError(f"{path}:{header_line}: missing column(s) {missing}; the header has {columns}")

    rows: List[Dict[str, Any]] = []
    seen_ids: Dict[str, int] = {}
    check_ids = id_column is not None and id_column in columns
    for line_no, text in body:
        fields = text.split("\t")
        if len(fields) != len(columns):
            raise ManifestError(
                f"{path}:{line_no}: expected {len(columns)} tab-separated fields {columns}, found {len(fields)}"
            )
        row: Dict[str, Any] = dict(zip(columns, fields))
        for column in required_columns:
            if column not in allow_empty and not row[column].strip():
                what = "empty transcript" if "text" in column or column == "sentence" else "empty field"
                raise ManifestError(
                    f"{path}:{line_no}: {what} in column {column!r} (fill it or remove the row: the "
                    "other files of its split are matched by id)"
                )
        if check_ids:
            uid = row[id_column]
            if uid in seen_ids:
                raise ManifestError(f"{path}:{line_no}: duplicate id {uid!r} (first on line {seen_ids[uid]})")
            seen_ids[uid] = line_no
        row["_line"] = line_no
        rows.append(row)
    return rows


def check_same_ids(
    first_rows: Sequence[Mapping[str, Any]],
    first_path: PathLike,
    second_rows: Sequence[Mapping[str, Any]],
    second_path: PathLike,
    *,
    id_column: str = "id",
    same_order: bool = False,
) -> None:
    """Check that two files hold the same ids (and, with ``same_order``, in the same order).

    Args:
        first_rows, second_rows: rows as returned by :func:`read_tsv` (``_line`` is used in
            messages when present).
        first_path, second_path: the files the rows came from, for the message.

    Raises:
        ManifestError: naming both files, the first offending line and up to five ids that only
            one of them has.
    """
    first_path, second_path = os.fspath(first_path), os.fspath(second_path)
    first_ids = [r[id_column] for r in first_rows]
    second_ids = [r[id_column] for r in second_rows]
    second_set, first_set = set(second_ids), set(first_ids)
    only_first = [r for r in first_rows if r[id_column] not in second_set]
    only_second = [r for r in second_rows if r[id_column] not in first_set]
    if only_first or only_second:
        parts = []
        if only_first:
            row = only_first[0]
            ids = ", ".join(repr(r[id_column]) for r in only_first[:5])
            parts.append(f"{first_path}:{row.get('_line', '?')}: {len(only_first)} id(s) not in {second_path}: {ids}")
        if only_second:
            row = only_second[0]
            ids = ", ".join(repr(r[id_column]) for r in only_second[:5])
            parts.append(f"{second_path}:{row.get('_line', '?')}: {len(only_second)} id(s) not in {first_path}: {ids}")
        raise ManifestError("; ".join(parts))
    if same_order and first_ids != second_ids:
        index = next(i for i, (a, b) in enumerate(zip(first_ids, second_ids)) if a != b)
        raise ManifestError(
            f"{first_path}:{first_rows[index].get('_line', '?')}: id {first_ids[index]!r} where "
            f"{second_path}:{second_rows[index].get('_line', '?')} has {second_ids[index]!r}; "
            "the files must list the ids in the same order"
        )


def write_tsv(path: PathLike, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Atomically write a header line and one line per row; returns the number of rows.

    Raises:
        ManifestError: a field holds a tab or a newline (it would corrupt the file).
    """
    count = 0
    with atomic_open(path) as f:
        f.write("\t".join(columns) + "\n")
        for row in rows:
            fields = [str(row[c]) for c in columns]
            for column, field in zip(columns, fields):
                if "\t" in field or "\n" in field or "\r" in field:
                    raise ManifestError(
                        f"{os.fspath(path)}: field {column!r} of id {row.get('id', '?')!r} "
                        f"holds a tab or newline: {field!r}"
                    )
            f.write("\t".join(fields) + "\n")
            count += 1
    return count
