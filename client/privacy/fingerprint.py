"""A dataset's fingerprint: which data a privacy ledger accounts for.

A ledger records the fingerprint of the data it was created for and refuses
other data, so one hospital dataset is not charged to several ledgers (or a
ledger to several datasets). ``dataset_fingerprint(path)`` is ``"sha256:"`` and
a hex sha256:

- of a file: its bytes (the same digest as ``sha256sum FILE``);
- of a directory: a version tag, then for every regular file under it, in
  sorted order of the ``/``-separated relative path, that path, its size in
  bytes and its content (the size frames the content, so no two different
  trees hash the same bytes).

What is left out, on purpose and nowhere else: entries whose name starts with
``.`` at any depth (``.git``, ``.DS_Store``, editor swap files, the temporary
files of an atomic write) and files ending in ``.lock`` (empty lock files, such
as a ledger's ``<ledger>.lock``). They are not data, and counting them would
change the fingerprint when nothing the loaders read changed. Keep the ledger
itself outside the data directory: it changes at every round.

Symbolic links are followed (the data is what they point to). A directory link
back to a directory being walked (a loop), a broken link and anything that is
neither a regular file nor a directory (fifo, socket, device) raise
:class:`DataError` instead of being skipped, as does a file whose size changes
while it is read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from shared_models.errors import DataError

PREFIX = "sha256:"
_DIR_TAG = b"fedcare-dataset-dir-v1\0"
_CHUNK = 1 << 20
_RAW = "surrogateescape"  # file names that are not UTF-8 hash as their raw bytes


def dataset_fingerprint(path: Path) -> str:
    """``"sha256:<hex>"`` of the data file or directory at ``path`` (see module)."""
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"Cannot fingerprint dataset {path}: it does not exist (or is a broken "
            "link). Pass the hospital's data file or directory."
        )
    digest = hashlib.sha256()
    try:
        if path.is_dir():
            digest.update(_DIR_TAG)
            for relative, file in sorted(_files(path, "", frozenset())):
                size = file.stat().st_size
                digest.update(f"{relative}\0{size}\0".encode("utf-8", _RAW))
                _hash_content(file, size, digest.update)
        elif path.is_file():
            _hash_content(path, path.stat().st_size, digest.update)
        else:
            raise DataError(
                f"Cannot fingerprint dataset {path}: it is neither a regular file "
                "nor a directory."
            )
    except OSError as exc:
        raise DataError(f"Cannot fingerprint dataset {path}: {exc}") from exc
    return PREFIX + digest.hexdigest()


def _skipped(name: str) -> bool:
    return name.startswith(".") or name.endswith(".lock")


def _files(
    directory: Path, relative: str, walking: frozenset[tuple[int, int]]
) -> list[tuple[str, Path]]:
    """``(relative path, path)`` of every regular file under ``directory``."""
    stat = directory.stat()
    key = (stat.st_dev, stat.st_ino)
    if key in walking:
        raise DataError(
            f"Cannot fingerprint dataset: {directory} links back to a directory it "
            "is inside (a symbolic-link loop). Remove the link or point it elsewhere."
        )
    walking = walking | {key}
    found: list[tuple[str, Path]] = []
    for entry in os.scandir(directory):
        if _skipped(entry.name):
            continue
        child = Path(entry.path)
        name = f"{relative}{entry.name}"
        if child.is_dir():
            found.extend(_files(child, f"{name}/", walking))
        elif child.is_file():
            found.append((name, child))
        else:
            raise DataError(
                f"Cannot fingerprint dataset: {child} is a broken link or not a "
                "regular file (fifo, socket, device). Remove it from the data "
                "directory or replace it with the data it stands for."
            )
    return found


def _hash_content(file: Path, size: int, update: Callable[[bytes], object]) -> None:
    read = 0
    with file.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            update(chunk)
            read += len(chunk)
    if read != size:
        raise DataError(
            f"Cannot fingerprint dataset: {file} changed while it was read ({size} "
            f"bytes expected, {read} read). Wait until nothing writes the data, then "
            "retry."
        )
