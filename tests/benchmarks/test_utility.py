"""benchmarks/utility.py: row contract, tables, and one tiny real run (slow)."""

from __future__ import annotations

import json
import subprocess
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
        {"setting": "ecg-arrhythmia patient eps8", "metric": "auroc",
         "worse_federated_than_local": [[{"hospital": "h2"}], []]}  # fmt: skip
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


@pytest.mark.slow
def test_quick_run_writes_every_arm(tmp_path: Path) -> None:
    out, doc = tmp_path / "u.json", tmp_path / "b.md"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--seeds", "0", "--hospitals",
           "3", "--out", str(out), "--work", str(tmp_path / "w"),
           "--markdown", str(doc)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    arms = {(r["arm"], r["privacy_unit"]) for r in report["rows"]}
    assert {("federated", "patient"), ("local_only", "patient"),
            ("single_hospital", "patient"), ("centralized", "none"),
            ("federated", "none")} <= arms  # fmt: skip
    for row in report["rows"]:
        assert KEYS <= set(row) and row["seeds"] == 1
        for value in row["pooled_auroc_values"]:
            assert 0.0 <= value <= 1.0
    assert utility_tables.BEGIN in doc.read_text()
    again = subprocess.run(
        [sys.executable, str(SCRIPT), "--from", str(out), "--markdown", str(doc)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
