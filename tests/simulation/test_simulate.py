"""fedcare simulate: the run folder, summary.json's table and the report."""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from simulation.cli import simulate as simulate_cli
from simulation.engine import RUN_SIMULATION_DEPRECATED
from simulation.report import write_report


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(simulate_cli.command)
    return app


def _history(run_dir: Path) -> None:
    rounds = []
    for number, f1 in ((1, 0.4), (2, 0.7)):
        rounds.append(
            {
                "round": number,
                "fit": {
                    h: {
                        "status": "trained",
                        "epsilon_spent": 0.5 * number,
                        "epsilon_budget": 8.0,
                    }
                    for h in ("h1", "h2")
                },
                "evaluation": {
                    "pooled": {"f1": f1, "auroc": 0.8, "auprc": 0.5},
                    "hospitals": {"h1": {"f1": f1 - 0.1}, "h2": {"f1": f1 + 0.1}},
                },
            }
        )
    (run_dir / "history.json").write_text(
        json.dumps({"run_name": "t", "rounds": rounds})
    )


def test_report_is_self_contained_with_the_table(tmp_path: Path) -> None:
    _history(tmp_path)
    summary = {
        "task": "ecg-arrhythmia",
        "run_name": "t",
        "rounds": 2,
        "primary_metric": "f1",
        "run_config": {"dp": True, "secagg": True, "strategy": "fedavg"},
        "timings": {"federation_s": 1.0},
        "hospitals": {
            h: {
                "local_only": {"f1": 0.3},
                "federated": {"f1": 0.6},
                "centralized": {"f1": 0.9},
                "epsilon_spent": 1.0,
                "epsilon_budget": 8.0,
            }
            for h in ("h1", "h2")
        },
        "means": {"local_only": 0.3, "federated": 0.6, "centralized": 0.9},
        "cost": {"text": "pooled test AUROC: federated 0.800, centralized 0.990."},
    }
    page = write_report(tmp_path, summary).read_text()
    assert "<b>What it cost:</b> pooled test AUROC: federated 0.800" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    # pooled by round, the arms, epsilon (no per-round hospital records here;
    # tests/simulation/test_report.py covers the rest of the page)
    assert len(images) == 3
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "http://" not in page and "https://" not in page  # nothing fetched
    assert "<td>0.300</td><td>0.600</td><td>0.900</td>" in page


def test_existing_out_is_refused_without_overwrite(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    result = CliRunner().invoke(_app(), ["--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "--overwrite" in result.output


@pytest.mark.slow  # 281 s measured at load 15-21 on the shared 2-core machine
def test_simulate_writes_run_folder_and_three_way_table(
    tmp_path: Path, monkeypatch, capfd, caplog
) -> None:
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))
    out = tmp_path / "run"
    args = [
        "--out",
        str(out),
        "--hospitals",
        "3",
        "--scale",
        "0.2",
        "--rounds",
        "1",
        "--num-cpus",
        "2",
        "--format",
        "json",
        "--ledger-dir",
        str(tmp_path / "led"),
    ]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    # Flower's run_simulation notice, dropped (simulation.engine), wherever
    # it would show: Flower's handler (stderr), the CLI's, the log records
    streams = capfd.readouterr()
    shown = result.output + streams.out + streams.err + caplog.text
    assert RUN_SIMULATION_DEPRECATED not in shown
    assert logging.getLogger("flwr").filters == []  # only during the run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 1 and summary["primary_metric"] == "f1"
    assert set(summary["hospitals"]) == {"hospital_01", "hospital_02", "hospital_03"}
    for entry in summary["hospitals"].values():
        assert {"local_only", "federated", "centralized"} <= set(entry)
        assert entry["federated"]["n"] == entry["local_only"]["n"]  # same test split
        assert 0 < entry["epsilon_spent"] <= entry["epsilon_budget"]
    for name in ("history.json", "history.csv", "report.html", "hospitals.json"):
        assert (out / name).is_file()
    for model in ("final", "best"):
        assert (out / "models" / model / "card.json").is_file()
    files = sorted((tmp_path / "led").glob("*.jsonl"))
    heads = [f for f in files if f.name.endswith(".audit-heads.jsonl")]
    ledgers = [f for f in files if f not in heads]
    # one ledger per hospital, and beside it the audit heads that hospital holds
    assert [f.name for f in ledgers] == [f"hospital_0{i}.jsonl" for i in (1, 2, 3)]
    assert [f.name for f in heads] == [f"{f.name}.audit-heads.jsonl" for f in ledgers]
    # what the guarantee cost, against the arms without it
    cost = summary["cost"]
    assert cost["federated"] == summary["pooled_federated"]["auroc"]
    assert cost["centralized"] == summary["pooled_baselines"]["centralized"]["auroc"]
    singles = summary["pooled_baselines"]["single_hospital"]
    assert set(singles) == set(summary["hospitals"])
    assert cost["best_single_hospital"] == max(
        m["auroc"] for m in singles.values() if m["auroc"] is not None
    )
    assert "patient" in cost["text"] and "centralized without DP" in cost["text"]
    assert summary["best_round"] == 1
    # the report of a real run: the guarantee beside both metric tables, the
    # run's phases in words, every figure inlined (test_report.py: the rest)
    page = (out / "report.html").read_text()
    assert page.count("<b>Privacy guarantee:</b>") == 2
    assert "federated training and evaluation" in page and "federation_s" not in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 5
