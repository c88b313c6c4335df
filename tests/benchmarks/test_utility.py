"""benchmarks/utility.py: row contract, tables, and one tiny real run (slow)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "utility.py"
sys.path.insert(0, str(ROOT))

from benchmarks import utility, utility_tables  # noqa: E402

KEYS = {"task", "arm", "privacy_unit", "epsilon", "seeds", "pooled_auroc_mean",
        "pooled_auroc_sd"}  # fmt: skip


def _report() -> dict:
    setting = utility.Setting("ecg-arrhythmia", "patient", 8.0)
    fed = [{"auroc": 0.9, "f1": 0.5}, {"auroc": 0.8, "f1": 0.4}]
    local = [{"auroc": 0.7}, {"auroc": None}]
    return {
        "date": "2026-12-02T00:00:00+00:00",
        "command": "python benchmarks/utility.py",
        "hospitals": 5,
        "scale": 1.0,
        "seeds": [0, 1],
        "machine": {"cpus": 2},
        "total_s": 120.0,
        "rows": [
            utility.summarise(setting, "federated", fed, "fedcare"),
            utility.summarise(setting, "local_only", local, "fedcare"),
            utility.summarise(
                utility.Setting("ecg-arrhythmia", None, None),
                "centralized",
                [{"auroc": 1.0}, {"auroc": 1.0}],
                "fedcare",
            ),
        ],
        "hospital_checks": [],
    }


def test_rows_carry_the_contract_keys_with_mean_and_spread() -> None:
    rows = _report()["rows"]
    assert all(KEYS <= set(r) for r in rows)
    fed, local, central = rows
    assert (fed["arm"], fed["privacy_unit"], fed["epsilon"]) == (
        "federated",
        "patient",
        8.0,
    )
    assert fed["pooled_auroc_mean"] == pytest.approx(0.85)
    assert fed["pooled_auroc_sd"] == pytest.approx(0.0707, abs=1e-4)
    assert local["pooled_auroc_values"] == [0.7] and local["pooled_auroc_sd"] is None
    assert (central["privacy_unit"], central["epsilon"]) == ("none", None)


def test_markdown_block_is_replaced_not_duplicated(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nhand-written text\n")
    utility_tables.write_markdown(_report(), doc)
    utility_tables.write_markdown(_report(), doc)
    text = doc.read_text()
    assert text.count(utility_tables.BEGIN) == 1 and "hand-written text" in text
    assert "| ecg-arrhythmia | federated | fedcare | patient-level, ε = 8 | 2 |" in text
    assert "0.850 ± 0.071 | 0.850 |" in text  # mean ± sd, ratio to centralized


def test_readme_headline_puts_the_arms_of_a_guarantee_on_one_line(
    tmp_path: Path,
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# fedcare\n\nintro\n")
    report = _report()
    report["hospital_checks"] = [
        {
            "setting": "ecg-arrhythmia patient eps8",
            "metric": "auroc",
            "worse_federated_than_local": [[{"hospital": "h2"}], []],
        }  # fmt: skip
    ]
    utility_tables.write_readme(report, readme)
    utility_tables.write_readme(report, readme)
    text = readme.read_text()
    assert text.count(utility_tables.HEADLINE_BEGIN) == 1 and "intro" in text
    # federated, best round not run, its ratio blank, local-only (one seed:
    # no spread), single hospital not run, centralized, 1 of 2 x 5 pairs worse
    assert (
        "| patient-level, ε = 8 | 0.850 ± 0.071 | not run |  | 0.700 | not run | "
        "1.000 ± 0.000 | 1 of 10 |" in text
    )
    assert "none (not private)" not in text  # centralized is a column, not a line


def test_a_hospital_worse_federated_than_alone_is_listed() -> None:
    seeds = [
        {
            "federated_hospitals": {"h1": {"auroc": 0.9}, "h2": {"auroc": 0.6}},
            "local_only_hospitals": {"h1": {"auroc": 0.8}, "h2": {"auroc": 0.7}},
        }
    ]
    check = utility.hospital_check(seeds, "ecg-arrhythmia")
    assert check["worse_federated_than_local"] == [
        [{"hospital": "h2", "federated": 0.6, "local_only": 0.7}]
    ]
