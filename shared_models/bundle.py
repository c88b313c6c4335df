"""App bundles (Flower FABs) and their sha256, the name hospitals approve them by.

``flwr run`` builds a bundle from a project folder with Flower's own
``build_fab_from_disk`` (a zip with fixed timestamps, so the same files give
the same bytes) and the SuperLink names it by the sha256 of those bytes. A
consortium publishes that hash for a release; each hospital lists the hashes
it approved in its node config (``approved-apps``), and its SuperNode's
ClientApp runner (``fedcare-clientapp``, from the hospital's own install)
refuses any other bundle before loading a line of it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from shared_models.errors import ModelError

HASH_RE = re.compile(r"^[0-9a-f]{64}$")


class BundleError(ModelError):
    """A project folder that cannot be built into a bundle, or a bad approved list."""


def bundle_sha256(content: bytes) -> str:
    """The sha256 (hex) of a bundle's bytes: what the SuperLink names it by."""
    return hashlib.sha256(content).hexdigest()


def build_bundle(project: Path) -> tuple[bytes, str]:
    """The bytes ``flwr run PROJECT`` would submit, and their sha256."""
    from flwr.cli.build import build_fab_from_disk

    project = Path(project)
    if not (project / "pyproject.toml").is_file():
        raise BundleError(
            f"{project}: not a Flower app folder (no pyproject.toml); give the "
            "folder `flwr run` is started from"
        )
    try:
        content = build_fab_from_disk(project)
    except Exception as exc:  # Flower raises several kinds; name the folder
        raise BundleError(
            f"{project}: Flower could not build its bundle: {exc}"
        ) from exc
    return content, bundle_sha256(content)


def read_approved(path: Path) -> frozenset[str]:
    """The approved bundle hashes of a hospital's list.

    One sha256 (64 lowercase hex digits) per line; ``#`` starts a comment
    (e.g. the release it names); blank lines are ignored. An unreadable file,
    a malformed line or an empty list is an error: the runner refuses every
    bundle rather than guess.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: cannot read the approved app list: {exc}") from exc
    hashes = set()
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.split("#", 1)[0].strip().lower()
        if not value:
            continue
        if not HASH_RE.match(value):
            raise BundleError(
                f"{path}:{number}: expected a bundle sha256 (64 hex digits, as "
                f"`fedcare provision app-hash` prints), found {value[:80]!r}"
            )
        hashes.add(value)
    if not hashes:
        raise BundleError(
            f"{path}: the approved app list is empty; add the sha256 of each "
            "release the consortium published (`fedcare provision app-hash`)"
        )
    return frozenset(hashes)
