"""The dashboard's JSON endpoints over run folders: missing, empty, starting,
partial, complete, tampered, a deployment's; downloads and what is refused."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import run_folders
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from server.dashboard import create_app
from simulation.cli.main import app as cli


def _state(run_dir: Path, **kw) -> dict:
    response = TestClient(create_app(run_dir, **kw)).get("/api/state")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_missing_folder_says_so(tmp_path: Path) -> None:
    state = _state(tmp_path / "not-yet")
    assert state["status"]["state"] == "missing"
    assert "no run folder" in state["status"]["message"]
    assert state["hospitals"] == [] and state["downloads"] == []


def test_an_empty_folder_says_so(tmp_path: Path) -> None:
    state = _state(tmp_path)
    assert state["status"]["state"] == "empty"
    assert "is empty" in state["status"]["message"]


def test_a_starting_simulation_lists_its_hospitals(tmp_path: Path) -> None:
    run_folders.nodes(tmp_path)
    state = _state(tmp_path)
    assert state["status"]["state"] == "starting"
    rows = {r["hospital"]: r for r in state["hospitals"]}
    assert set(rows) == set(run_folders.HOSPITALS)
    assert all(r["epsilon"]["spent"] is None for r in rows.values())
    assert all(r["epsilon"]["budget"] == 8.0 for r in rows.values())


def test_a_partial_run(tmp_path: Path) -> None:
    run_folders.run(tmp_path, done=2)
    state = _state(tmp_path)
    assert state["status"]["state"] == "running"
    assert "Round 3 of 3" in state["status"]["message"]
    run = state["run"]
    assert (run["rounds_done"], run["rounds_planned"]) == (2, 3)
    assert run["task"] == "signal-anomaly" and run["secagg"]["enabled"]
    assert "1e-05" in run["privacy"]["text"] and "patient" in run["privacy"]["text"]
    assert state["rounds"]["rounds"] == [1, 2]
    assert state["rounds"]["pooled"]["auroc"] == pytest.approx([0.6, 0.7])
    assert state["rounds"]["loss"]["mean train loss (simulation only)"] == [1.0, 0.5]
    assert state["comparison"] is None
    rows = {r["hospital"]: r for r in state["hospitals"]}
    assert rows["hospital_03"]["rounds_joined"] == 1
    assert rows["hospital_03"]["problems"][0]["status"] == "no-reply"
    assert rows["hospital_01"]["last_seen_round"] == 2
    # epsilon of each simulated hospital, from its own report: 1/3, 2/3 of spent
    levels = [rows[h]["epsilon"]["level"] for h in run_folders.HOSPITALS]
    assert levels == ["ok", "ok", "ok"]
    assert state["audit"]["status"] == "verified"
    assert "once the run ends" in state["audit"]["text"]
    assert len(state["audit"]["records"]) == 2


def test_a_complete_simulation(tmp_path: Path) -> None:
    run_folders.run(tmp_path, done=3)
    run_folders.summary(tmp_path)
    state = _state(tmp_path)
    assert state["status"]["state"] == "finished"
    assert state["comparison"]["means"] == {
        "local_only": 0.6,
        "federated": 0.7,
        "centralized": 0.9,
    }
    assert state["run"]["privacy"]["text"].startswith("(2, 1e-05)-DP")
    assert state["audit"]["status"] == "verified"
    assert "3 checked" in state["audit"]["text"]  # models against checkpoints
    names = [d["name"] for d in state["downloads"]]
    assert names == ["models/final", "report.html"]
    # summary.json's spend wins: 2 of 8 for everyone
    assert {r["epsilon"]["spent"] for r in state["hospitals"]} == {2.0}


def test_epsilon_bars_turn_amber_then_red(tmp_path: Path) -> None:
    run_folders.run(tmp_path, done=3, spent=(5.9, 6.0, 7.2))
    rows = {r["hospital"]: r["epsilon"] for r in _state(tmp_path)["hospitals"]}
    assert [rows[h]["level"] for h in run_folders.HOSPITALS] == ["ok", "amber", "red"]


def test_a_deployment_shows_no_hospital_epsilon(tmp_path: Path) -> None:
    run_folders.run(tmp_path, done=3, simulation=False)
    state = _state(tmp_path)
    assert state["status"]["state"] == "finished" and not state["simulation"]
    assert {r["hospital"] for r in state["hospitals"]} == set(run_folders.HOSPITALS)
    assert all(r["epsilon"] is None for r in state["hospitals"])
    assert state["rounds"]["loss"] == {}
    assert "not known to the aggregator" in state["run"]["privacy"]["text"]


def test_a_tampered_audit_log_names_the_broken_record(tmp_path: Path) -> None:
    run_folders.run(tmp_path, done=3)
    run_folders.tamper(tmp_path, line=2)
    audit = _state(tmp_path)["audit"]
    assert audit["status"] == "broken" and audit["line"] == 2
    assert audit["text"].startswith("Broken at record 2: checksum mismatch")


def test_a_deleted_audit_log_is_broken(tmp_path: Path) -> None:
    run_folders.run(tmp_path, done=1)
    (tmp_path / "audit.jsonl").unlink()
    assert _state(tmp_path)["audit"]["status"] == "broken"


def test_parts_and_page(tmp_path: Path) -> None:
    run_folders.run(tmp_path, done=1)
    client = TestClient(create_app(tmp_path))
    for part, key in (
        ("run", "run"),
        ("rounds", "rounds"),
        ("hospitals", "hospitals"),
        ("audit", "audit"),
        ("downloads", "downloads"),
    ):
        body = client.get(f"/api/{part}").json()
        assert set(body) >= {"status", key}
    page = client.get("/")
    assert page.status_code == 200 and "fedcare dashboard" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")
    library = client.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert library.status_code == 200 and "uPlot (v1.6.32)" in library.text
    assert client.get("/static/vendor/uplot/LICENSE").status_code == 200
    for hidden in ("/docs", "/openapi.json", "/redoc"):
        assert client.get(hidden).status_code == 404


def test_downloads_are_the_models_and_the_report_only(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_folders.run(run_dir, done=3)
    run_folders.summary(run_dir)
    (tmp_path / "secret.txt").write_text("outside")
    client = TestClient(create_app(run_dir))
    archive = zipfile.ZipFile(
        io.BytesIO(client.get("/download/models/final.zip").content)
    )
    assert "final/card.json" in archive.namelist()
    assert client.get("/report.html").status_code == 200
    assert (
        "default-src 'none'"
        in client.get("/report.html").headers["content-security-policy"]
    )
    for path in (
        "/download/models/..%2F..%2Fsecret.zip",
        "/download/models/../../secret.txt",
        "/download/models/%2e%2e.zip",
        "/download/models/nothing.zip",
        "/hospitals.json",
        "/run.json",
        "/audit.jsonl",
        "/static/../run.json",
        "/static/..%2F..%2F..%2Frun.json",
        "/models/final/card.json",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "outside" not in response.text and "run_config" not in response.text
    # the node configs' data and ledger paths never leave the run folder
    assert "/secret/" not in client.get("/api/state").text


def test_a_symlinked_model_is_not_offered(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_folders.run(run_dir, done=1)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "card.json").write_text("{}")
    (run_dir / "models" / "evil").symlink_to(outside)
    client = TestClient(create_app(run_dir))
    assert client.get("/download/models/evil.zip").status_code == 404
    assert "models/evil" not in client.get("/api/downloads").text


def test_a_token_guards_everything_but_the_page(tmp_path: Path) -> None:
    token = "t" * 24
    client = TestClient(create_app(tmp_path, token=token))
    assert client.get("/").status_code == 200
    assert client.get("/api/state").status_code == 401
    assert client.get("/report.html").status_code == 401
    good = {"authorization": f"Bearer {token}"}
    assert client.get("/api/state", headers=good).status_code == 200
    assert client.post("/api/login", json={"token": "wrong"}).status_code == 401
    assert client.post("/api/login", json={"token": token}).status_code == 200
    assert client.cookies.get("fedcare_dashboard") == token


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3"])
def test_binding_beyond_loopback_needs_tls_and_a_token(tmp_path: Path, host) -> None:
    token = tmp_path / "token"
    token.write_text("x" * 32)
    args = ["dashboard", "--run-dir", str(tmp_path), "--host", host]
    refused = CliRunner().invoke(cli, args)
    with_token = CliRunner().invoke(cli, [*args, "--token-file", str(token)])
    assert refused.exit_code == 2 and "needs TLS" in refused.output
    assert "a token" in refused.output
    assert with_token.exit_code == 2 and "needs TLS" in with_token.output
    assert "a token" not in with_token.output


def test_a_file_is_not_a_run_folder(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    result = CliRunner().invoke(cli, ["dashboard", "--run-dir", str(tmp_path / "f")])
    assert result.exit_code == 2 and "is a file" in result.output


def test_raw_dot_dot_paths_reach_nothing(tmp_path: Path) -> None:
    """Paths sent as they are (no client normalising them) to a real server."""
    import http.client
    import socket
    import threading

    import uvicorn

    run_dir = tmp_path / "run"
    run_folders.run(run_dir, done=1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(run_dir), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            thread.join(0.1)
        for path in (
            "/static/../../run.json",
            "/static/../app.py",
            "/static/%2e%2e/%2e%2e/run.json",
            "/download/models/../../run.json",
            "/download/models/..%2f..%2frun.zip",
            "//run.json",
        ):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            connection.close()
            assert response.status == 404, path
            assert b"run_config" not in body and b"import" not in body, path
    finally:
        server.should_exit = True
        thread.join(10)
