"""Finding a data kind inside a hospital folder with the conventional layout."""

from __future__ import annotations

from pathlib import Path

from shared_models.errors import DataError

KINDS: dict[str, tuple[str, ...]] = {
    "ecg": ("*.hea", "*.csv"),
    "signals": ("*.csv", "*.txt", "*.out"),
    "vitals": ("vitals.parquet", "vitals.csv", "*.parquet"),
}


def _has_data(directory: Path, kind: str) -> bool:
    return any(p.is_file() for pattern in KINDS[kind] for p in directory.glob(pattern))


def resolve_data_path(path: str | Path, kind: str) -> Path:
    """Return the file or folder holding data of ``kind`` ("ecg", "signals", "vitals").

    ``path`` may be a file, a folder containing such data directly, or a hospital
    folder with the conventional sub-folder ``ecg/``, ``signals/`` or ``vitals/``.
    """
    if kind not in KINDS:
        raise DataError(f"unknown data kind {kind!r}; expected one of {list(KINDS)}")
    path = Path(path)
    if not path.exists():
        # A WFDB record may be named without its .hea suffix.
        if kind == "ecg" and path.with_name(path.name + ".hea").is_file():
            return path
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        return path
    if _has_data(path, kind):
        return path
    sub = path / kind
    if sub.is_dir() and _has_data(sub, kind):
        return sub
    patterns = ", ".join(KINDS[kind])
    raise DataError(
        f"{path}: found no {kind} data; looked for {patterns} in {path} "
        f"and in {sub}. Put the files in {sub} or pass the file itself."
    )
