"""Generated blocks in the project's Markdown docs, rewritten in place."""

from __future__ import annotations

from pathlib import Path

from shared_models.atomic import atomic_write_text


def replace_block(path: Path, begin: str, end: str, block: str) -> None:
    """Put ``block`` (which starts with ``begin`` and ends with ``end``) in
    place of the file's block between those markers, or append it; atomic."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(path, text)
