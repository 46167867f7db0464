"""Atomic file writes: a file is either its old content or its complete new content.

Writes go through :func:`atomic_path` / :func:`atomic_open`: the content lands in a hidden
temporary file in the same folder and is moved over the destination with ``os.replace`` only once
it is complete, so an interrupted run never leaves a half-written file under a name that a later
step would trust. :func:`remove_stale_temp_files` deletes what a killed run left behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any, Iterator, Union

__all__ = ["TEMP_PREFIX", "atomic_path", "atomic_open", "remove_stale_temp_files"]

PathLike = Union[str, "os.PathLike[str]"]
TEMP_PREFIX = ".tmp-"  # hidden, and never a name that prep reads


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; move it over ``path`` when the block succeeds.

    The temporary name keeps ``path``'s extension, for writers that pick a format from it
    (soundfile, numpy). On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix="-" + name, dir=folder)
    os.close(fd)
    try:
        yield temp
        os.chmod(temp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        raise


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w") -> Iterator[Any]:
    """``open`` whose content replaces ``path`` only once the block finished without an exception."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as temp:
        kwargs = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
        with open(temp, mode, **kwargs) as f:
            yield f


def remove_stale_temp_files(folder: PathLike) -> int:
    """Delete temporary files that a killed run left in ``folder`` (not recursive); returns the count."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return 0
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX) and entry.is_file():
                os.remove(entry.path)
                removed += 1
    return removed
