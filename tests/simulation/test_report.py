"""report.html built from a run folder: words, the guarantee, one set of plots, n/a.

The run folder is written by hand in the shapes ``fedcare simulate`` writes
(run.json, history.json, hospitals.json, hospital-reports/, summary.json), so
no federation runs here; hospital h3's test split has no positives.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from client.privacy import guarantee_text
from server.dashboard import run_folder
from shared_models.errors import ConfigError
from simulation import plots
from simulation.report import fmt, phase_times, write_report

HOSPITALS = ("h1", "h2", "h3")


def _own(number: int, positives: bool) -> dict[str, Any]:
    """A hospital's own metrics of round ``number`` (h3: no positives)."""
    if not positives:
        return {"n": 40, "positives": 0, "auroc": None, "auprc": None, "f1": None,
                "precision": 0.0, "recall": None, "accuracy": 0.95}  # fmt: skip
    return {"n": 50, "positives": 5, "auroc": 0.7 + 0.1 * number,
            "auprc": 0.3 * number, "f1": 0.2 * number}  # fmt: skip


def _write_run(run_dir: Path) -> dict[str, Any]:
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"task": "ecg-arrhythmia", "num-server-rounds": 2, "strategy": "fedadam",
              "dp": True, "secagg": True, "run-epsilon": 1.0}  # fmt: skip
    (run_dir / "run.json").write_text(
        json.dumps({"run_name": "t", "run_config": config})
    )
    rounds = [
        {"round": r, "evaluation": {
            "pooled": {"n": 140, "positives": 10, "auroc": 0.75 + 0.1 * r,
                       "auprc": None if r == 1 else 0.5, "f1": 0.3 * r},
            "validation": {"f1": 0.25 * r}, "evaluated_by": list(HOSPITALS)}}
        for r in (1, 2)
    ]  # fmt: skip
    (run_dir / "history.json").write_text(
        json.dumps({"run_name": "t", "rounds": rounds})
    )
    reports = run_dir / "hospital-reports"
    nodes = [{"hospital-id": h, "epsilon": 8.0, "delta": 1e-5,
              "privacy-unit": "patient"} for h in HOSPITALS]  # fmt: skip
    (run_dir / "hospitals.json").write_text(json.dumps(nodes))
    hospitals = {}
    for k, hid in enumerate(HOSPITALS):
        positives = hid != "h3"
        own = {str(r): _own(r, positives) for r in (1, 2)}
        fit = {str(r): {"train-loss": 0.7 - 0.1 * r - 0.01 * k} for r in (1, 2)}
        (reports / hid).mkdir(parents=True)
        (reports / hid / "t.json").write_text(
            json.dumps({"run_name": "t", "fit": fit, "evaluation": own})
        )
        hospitals[hid] = {
            "federated": own["2"], "federated_rounds": own,
            "local_only": _own(1, positives) | {"f1": 0.1 if positives else None},
            "centralized": _own(2, positives) | {"f1": 0.6 if positives else None},
            "epsilon_spent": 2.0 + k, "epsilon_budget": 8.0,
            "declined_rounds": 0, "decline_reason": "",
        }  # fmt: skip
    summary = {
        "task": "ecg-arrhythmia", "run_name": "t", "rounds": 2,
        "primary_metric": "f1", "higher_is_better": True,
        "privacy": {"privacy_unit": "patient", "dp": True, "secagg": True,
                    "run_epsilon": 1.0, "epsilon_budget": 8.0, "delta": 1e-5,
                    "guarantee": guarantee_text(1.0, 1e-5, "patient")},
        "run_config": config, "best_round": 2,
        "pooled_federated": rounds[1]["evaluation"]["pooled"],
        "pooled_federated_best": rounds[1]["evaluation"]["pooled"],
        "pooled_baselines": {"centralized": {"auroc": 0.97, "auprc": 0.8, "f1": 0.7},
                             "single_hospital": {"h1": {"auroc": 0.6, "f1": None}}},
        "hospitals": hospitals,
        "means": {"local_only": 0.1, "federated": 0.4, "centralized": 0.6},
        "timings": {"cohort_s": 3.2, "federation_s": 75.0, "local_only_s": 20.4,
                    "centralized_s": 9.0},
        "cost": {"text": "pooled test AUROC: federated 0.950, centralized 0.970."},
    }  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return summary


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The run folder and its report.html, written once (3.3 s measured at
    load 9 on the shared 2-core machine, 47 s at load 17)."""
    run_dir = tmp_path_factory.mktemp("report") / "run"
    _write_run(run_dir)
    return run_dir, write_report(run_dir).read_text()  # from summary.json


def _row(page: str, name: str) -> str:
    match = re.search(rf'<tr><th scope="row">{name}</th>(.*?)</tr>', page)
    assert match, name
    return match.group(1)


def test_header_is_words_and_a_table_not_a_dict(run: tuple[Path, str]) -> None:
    _, page = run
    head = page.split("<body>")[1].split("<h2>")[0]
    assert "{" not in head and "_s'" not in head and "federation_s" not in head
    assert "<dd>3: h1, h2, h3</dd>" in head and "<dd>2 of fedadam</dd>" in head
    assert "federated training and evaluation</th><td>1 min 15 s</td>" in head
    assert '<th scope="row">total</th><td>1 min 48 s</td>' in head


def test_the_guarantee_is_stated_beside_every_metric_table(
    run: tuple[Path, str],
) -> None:
    _, page = run
    sections = page.split("<h2>")[1:]
    assert [s.split("</h2>")[0] for s in sections] == [
        "Each hospital", "All hospitals pooled", "Figures",
    ]  # fmt: skip
    words = html.escape(guarantee_text(1.0, 1e-5, "patient"))
    for section in sections[:2]:
        assert "<b>Privacy guarantee:</b> " + words in section
        assert "Unit: patient; epsilon 1 for this run, delta 1e-05" in section
        assert "budget: h1 2.000 of 8.000; h2 3.000 of 8.000; h3 4.000" in section
        assert "SecAgg+ on" in section
    # the private arms beside the non-private one, each column saying which
    hospital_table = sections[0]
    assert "federated (DP, epsilon 1 per patient, SecAgg+)" in hospital_table
    assert "centralized (no DP, all data in one place)" in hospital_table
    assert "<td>3.000</td><td>8.000</td>" in _row(page, "h2")  # spent / budget


def test_unsupported_metrics_read_na_never_zero(run: tuple[Path, str]) -> None:
    _, page = run
    h3 = _row(page, "h3")
    assert h3.startswith('<td class="na">n/a</td>' * 3)  # the three arms
    assert "0.000" not in h3
    assert "<td>0.100</td><td>0.400</td><td>0.600</td>" in _row(page, "h1")
    alone = _row(page, re.escape("h1&#x27;s model alone, at every hospital (DP alone, "
                                 "epsilon 1 per patient)"))  # fmt: skip
    assert alone.startswith('<td>0.600</td><td class="na">n/a</td><td class="na">')


def test_one_set_of_plots_inlined_with_their_numbers(run: tuple[Path, str]) -> None:
    run_dir, page = run
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 5  # pooled, loss, per hospital, arms, epsilon
    assert all(base64.b64decode(png).startswith(b"\x89PNG") for _, png in images)
    assert page.count("<details>") == 5  # every figure's numbers as a table
    assert not re.search(r"https?://|<script|<link", page)  # nothing fetched
    summary = json.loads((run_dir / "summary.json").read_text())
    figures = {f.id: f for f in plots.figures(run_dir, summary)}
    # the dashboard's own series (server.dashboard.run_folder), not a second copy
    series = run_folder.metric_series(run_folder.read_folder(run_dir))
    pooled = figures["pooled"]
    assert [r[0] for r in pooled.rows] == series["rounds"] == [1, 2]
    assert [r[pooled.columns.index("pooled AUPRC")] for r in pooled.rows] == [None, 0.5]
    assert figures["loss"].columns[1:] == tuple(series["loss"])
    per_hospital = {r[0]: r[1:] for r in figures["hospitals"].rows}
    assert per_hospital["h3"] == (None, None, None, None)  # gaps, not zeros
    assert per_hospital["h1"] == (pytest.approx(0.2), pytest.approx(0.4), 0.1, 0.6)


def test_the_page_is_accessible(run: tuple[Path, str]) -> None:
    _, page = run
    assert page.startswith('<!doctype html><html lang="en">')
    tables = re.findall(r"<table>(.*?)</table>", page)
    assert tables and all(t.startswith("<caption>") for t in tables)
    assert all('<th scope="col">' in t for t in tables)
    assert "<figcaption" in page and 'alt=""' not in page


def test_cli_output_reads_na_and_words(
    run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from simulation.cli.simulate import _print

    run_dir, _ = run
    _print(json.loads((run_dir / "summary.json").read_text()), run_dir)
    out = capsys.readouterr().out
    h3 = next(line for line in out.splitlines() if " h3 " in line)
    assert h3.count("n/a") == 3 and "0.000" not in h3
    assert "wall time: writing the synthetic hospitals 3 s;" in out
    assert "timings (s)" not in out


def test_report_of_a_folder_without_a_summary_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"summary\.json: cannot read"):
        write_report(tmp_path)
    (tmp_path / "summary.json").write_text("[1]")
    with pytest.raises(ConfigError, match="not a fedcare summary"):
        write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_formats() -> None:
    assert [fmt(v) for v in (None, float("nan"), 0.0, 3, "x")] == [
        "n/a", "n/a", "0.000", "3", "x",
    ]  # fmt: skip
    assert phase_times({"federation_s": 3725.0, "cohort_s": 1.0}) == [
        ("writing the synthetic hospitals", "1 s"),
        ("federated training and evaluation", "1 h 2 min"),
        ("total", "1 h 2 min"),
    ]


def test_a_run_without_dp_says_so_beside_its_tables(tmp_path: Path) -> None:
    summary = _write_run(tmp_path / "run")
    summary["privacy"] = {"privacy_unit": "none", "dp": False, "secagg": False,
                          "run_epsilon": None, "delta": 1e-5}  # fmt: skip
    page = write_report(tmp_path / "run", summary).read_text()
    promise = "<b>Privacy guarantee:</b> none. This run trained without differential"
    assert page.count(promise) == 2
    assert "SecAgg+ off: the aggregator sees each hospital's update" in page
    assert "federated (no DP, no SecAgg+)" in page and "DP alone" not in page
