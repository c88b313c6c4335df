"""The reliability table (docs/reliability.md), recorded by the tests themselves.

A hostile-input, tamper or fault test wraps each case it tries in
:func:`case`; the case counts as handled when the test's checks inside pass.
``lost`` and ``spent`` say whether the test also checks that no file was
changed or half-written and that no privacy budget was charged (``None``: the
case cannot lose data or spend budget, e.g. a reader that writes nothing).

``python -m pytest ... --reliability-md docs/reliability.md`` rewrites the
table between the file's markers from the cases of that run (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

BEGIN = "<!-- reliability-table:begin -->"
END = "<!-- reliability-table:end -->"


@dataclass
class Row:
    tried: int = 0
    handled: int = 0
    lost_checked: bool = False
    lost: int = 0
    spent_checked: bool = False
    spent: int = 0


ROWS: dict[str, Row] = {}


@contextmanager
def case(
    kind: str, *, checks_lost: bool = False, checks_spent: bool = False
) -> Iterator[None]:
    """One case of ``kind``: handled if the block's checks pass. A test that
    checks files (``checks_lost``) or the budget (``checks_spent``) asserts
    they are untouched inside the block, so a handled case lost and spent 0;
    a failed one counts as a loss or spend of unknown size."""
    row = ROWS.setdefault(kind, Row())
    row.tried += 1
    row.lost_checked |= checks_lost
    row.spent_checked |= checks_spent
    try:
        yield
    except BaseException:
        row.lost += int(checks_lost)
        row.spent += int(checks_spent)
        raise
    row.handled += 1


def table() -> str:
    """The Markdown table of this run's cases."""
    lines = [
        "| fault or input class | cases tried | handled | data lost | budget "
        "spent for nothing |",
        "|---|--:|--:|--:|--:|",
    ]
    for kind, row in sorted(ROWS.items()):
        lost = str(row.lost) if row.lost_checked else "n/a (writes nothing)"
        spent = str(row.spent) if row.spent_checked else "n/a (no training)"
        lines.append(f"| {kind} | {row.tried} | {row.handled} | {lost} | {spent} |")
    total = sum(r.tried for r in ROWS.values())
    handled = sum(r.handled for r in ROWS.values())
    lines.append(f"| **all** | **{total}** | **{handled}** | | |")
    return "\n".join(lines)


def rewrite(path: str) -> None:
    """Replace the table between the markers of ``path`` (atomically)."""
    from pathlib import Path

    from shared_models.atomic import atomic_write_text

    doc = Path(path)
    text = doc.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(doc, f"{head}{BEGIN}\n{table()}\n{END}{tail}")
