"""What the dashboard lets a person download: the exported models and the
report, and nothing else of the run folder.

A download is named by an entry of :func:`downloads` (``models/<name>`` or
``report.html``), never by a path: the request's name must equal one of the
listed names exactly, and a listed model is a real folder directly under
``RUN/models`` (no symlink, no dot-file), so no request can reach a file
outside them.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

from server.dashboard.run_folder import REPORT_NAME

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def model_dirs(run_dir: Path) -> dict[str, Path]:
    """``name -> folder`` of each exported model (``RUN/models/<name>/``)."""
    root = Path(run_dir) / "models"
    if not root.is_dir() or root.is_symlink():
        return {}
    return {
        entry.name: entry
        for entry in sorted(root.iterdir())
        if SAFE_NAME.match(entry.name)
        and entry.is_dir()
        and not entry.is_symlink()
        and (entry / "card.json").is_file()
    }


def report_file(run_dir: Path) -> Path | None:
    path = Path(run_dir) / REPORT_NAME
    return path if path.is_file() and not path.is_symlink() else None


def downloads(run_dir: Path) -> list[dict[str, Any]]:
    items = [
        {
            "name": f"models/{name}",
            "label": f"model {name} (zip)",
            "href": f"download/models/{name}.zip",
        }
        for name in model_dirs(run_dir)
    ]
    if report_file(run_dir) is not None:
        items.append({"name": REPORT_NAME, "label": "report", "href": REPORT_NAME})
    return items


def model_zip(run_dir: Path, name: str) -> bytes | None:
    """The model folder ``name`` as a zip archive (``None`` if not listed)."""
    folder = model_dirs(run_dir).get(name)
    if folder is None:
        return None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.is_symlink() and SAFE_NAME.match(path.name):
                archive.write(path, f"{name}/{path.name}")
    return buffer.getvalue()
