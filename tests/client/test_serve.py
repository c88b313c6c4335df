"""fedcare serve: the HTTP API over tiny trained models, with a real HTTP client."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from client.data import apply_vitals_stats
from client.pipeline import train_local
from client.serve import ModelServer, create_app
from client.serve_schema import MAX_ITEMS
from client.tasks.ecg import normalise_beats
from client.training import TrainConfig, predict
from shared_models.export import load_model_dir, read_card
from simulation.cli.main import app as cli

FAST = TrainConfig(epochs=1, batch_size=256, lr=5e-3, seed=0, device="cpu")
RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def models(
    tiny_hospitals: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Non-private models trained on one tiny hospital, and a federated-style copy."""
    out = tmp_path_factory.mktemp("served")
    dirs = {}
    for task in ("ecg-arrhythmia", "ecg-anomaly", "icu-deterioration"):
        dirs[task] = out / task
        train_local(task, tiny_hospitals[0], FAST, None, dirs[task])
    federated = out / "icu-federated"
    shutil.copytree(dirs["icu-deterioration"], federated)
    card = json.loads((federated / "card.json").read_text())
    norm = card["normalisation"]
    card["normalisation"] = {
        k: v
        for k, v in norm.items()
        if k not in ("median", "low", "high", "mean", "std")
    } | {"scope": "local"}
    (federated / "card.json").write_text(json.dumps(card))
    dirs["icu-federated"] = federated
    return dirs


def _client(model_dir: Path, normalisation: dict | None = None) -> TestClient:
    return TestClient(create_app(ModelServer(model_dir, normalisation, "cpu")))


def _beats(n: int) -> list[list[float]]:
    t = np.linspace(0, 1, 90)
    return [
        (
            np.exp(-((t - 0.3) ** 2) / 0.002) * RNG.uniform(0.5, 2)
            + RNG.normal(0, 0.05, 90)
        )
        .round(4)
        .tolist()
        for _ in range(n)
    ]


def test_health_and_card(models: dict[str, Path]) -> None:
    client = _client(models["ecg-arrhythmia"])
    card = read_card(models["ecg-arrhythmia"])

    health = client.get("/health").json()
    public = client.get("/model").json()

    assert health["status"] == "ok" and health["task"] == "ecg-arrhythmia"
    assert health["model"] == "lstm_classifier"
    assert health["weights_sha256"] == card.weights_sha256 != ""
    assert "training_data" not in public and public["threshold"] == card.threshold


def test_beats_are_normalised_like_training(models: dict[str, Path]) -> None:
    client = _client(models["ecg-arrhythmia"])
    model, card = load_model_dir(models["ecg-arrhythmia"])
    raw = _beats(3)

    reply = client.post("/predict", json={"beats": raw})
    scaled = client.post(
        "/predict", json={"beats": [[2 * v + 1 for v in b] for b in raw]}
    )
    one = client.post("/predict", json={"beat": raw[0]})

    assert reply.status_code == 200, reply.text
    body = reply.json()
    want = predict(model, normalise_beats(np.array(raw)))
    got = [
        [p["probabilities"]["N"], p["probabilities"]["V"]] for p in body["predictions"]
    ]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert body["count"] == 3 and body["threshold"] == pytest.approx(card.threshold)
    for p, probs in zip(body["predictions"], want, strict=True):
        assert p["label"] == ("V" if probs[1] >= card.threshold else "N")
    scaled_probs = [p["probabilities"]["V"] for p in scaled.json()["predictions"]]
    np.testing.assert_allclose(scaled_probs, want[:, 1], atol=1e-4)  # gain, offset
    first = one.json()["predictions"][0]
    assert first["label"] == body["predictions"][0]["label"]
    assert first["probabilities"]["V"] == pytest.approx(want[0, 1], abs=1e-5)


@pytest.mark.parametrize(
    ("payload", "status", "field", "words"),
    [
        ({"beats": [[0.0] * 90, [0.0] * 80]}, 422, "beats[1]", "80 values"),
        ({"beats": [[0.0] * 3 + ["x"] + [0.0] * 86]}, 422, "beats[0][3]", "'x'"),
        ({"beats": [[0.0] * 89 + [True]]}, 422, "beats[0][89]", "True"),
        ({"beats": [[0.0] * 89 + [None]]}, 422, "beats[0][89]", "None"),
        ({"beats": [0.0] * 90}, 422, "beats[0]", "float"),
        ({"beats": []}, 422, "beats", "empty"),
        ({"beat": "abc"}, 422, "beat", "str"),
        ({"stays": []}, 422, "beats", "missing"),
        ({"beats": [[0.0] * 90] * (MAX_ITEMS + 1)}, 413, "beats", "4097 items"),
        ([1, 2], 400, "body", "list"),
    ],
    ids=[
        "short-beat",
        "string",
        "bool",
        "null",
        "flat-list",
        "empty",
        "beat-not-list",
        "wrong-key",
        "too-many",
        "not-object",
    ],
)
def test_bad_beats_get_clear_errors(
    models: dict[str, Path], payload, status: int, field: str, words: str
) -> None:
    reply = _client(models["ecg-arrhythmia"]).post("/predict", json=payload)

    detail = reply.json()["detail"]
    assert reply.status_code == status
    assert detail["field"] == field and words in detail["error"]
    assert detail["expected"]


def test_invalid_json_is_400(models: dict[str, Path]) -> None:
    reply = _client(models["ecg-arrhythmia"]).post(
        "/predict", content=b"{beats: ", headers={"content-type": "application/json"}
    )
    assert (
        reply.status_code == 400 and "not valid JSON" in reply.json()["detail"]["error"]
    )


def test_autoencoder_returns_score_and_threshold(models: dict[str, Path]) -> None:
    model, card = load_model_dir(models["ecg-anomaly"])
    raw = _beats(4)

    body = _client(models["ecg-anomaly"]).post("/predict", json={"beats": raw}).json()

    scores = predict(model, normalise_beats(np.array(raw)))
    for p, score in zip(body["predictions"], scores, strict=True):
        assert p["anomaly_score"] == pytest.approx(float(score), rel=1e-5)
        assert p["threshold"] == pytest.approx(card.threshold)
        assert p["is_anomaly"] == (score > card.threshold)


def _stay(features: int, hours: int = 48) -> list[list[float | None]]:
    rows = RNG.normal(80, 10, size=(hours, features)).round(2).tolist()
    rows[0][0] = None  # not measured yet: median-imputed
    rows[5][1] = None  # forward-filled from hour 4
    return rows


def test_icu_stays_with_gaps_match_training_preprocessing(
    models: dict[str, Path],
) -> None:
    model, card = load_model_dir(models["icu-deterioration"])
    features = len(card.normalisation["features"])
    full, short = _stay(features), _stay(features, hours=30)
    client = _client(models["icu-deterioration"])

    reply = client.post("/predict", json={"stays": [{"hours": full}, {"hours": short}]})

    assert reply.status_code == 200, reply.text
    x = np.array([full, short + [short[-1]] * 18], dtype=np.float64)
    x[0, 5, 1] = x[0, 4, 1]
    x[1, 5, 1] = x[1, 4, 1]
    want = predict(model, apply_vitals_stats(x, card.normalisation))[:, 1]
    got = [p["probabilities"]["deterioration"] for p in reply.json()["predictions"]]
    np.testing.assert_allclose(got, want, atol=1e-5)
    wrong = client.post(
        "/predict", json={"stays": [{"hours": [[1.0] * (features + 1)]}]}
    )
    assert wrong.status_code == 422
    assert wrong.json()["detail"]["field"] == "stays[0].hours[0]"
    assert client.post("/predict", json={"stays": [{"rows": []}]}).status_code == 422


def test_federated_icu_model_needs_local_normalisation(models: dict[str, Path]) -> None:
    local = read_card(models["icu-deterioration"])
    stay = {"hours": _stay(len(local.normalisation["features"]))}
    client = _client(models["icu-federated"])

    refused = client.post("/predict", json={"stays": [stay]})
    health = client.get("/health").json()
    served = _client(models["icu-federated"], local.normalisation).post(
        "/predict", json={"stays": [stay]}
    )
    reference = _client(models["icu-deterioration"]).post(
        "/predict", json={"stays": [stay]}
    )

    assert refused.status_code == 422
    assert "--normalisation" in refused.json()["detail"]["expected"]
    assert health["status"] == "needs-normalisation" and "scope" in health["problem"]
    assert served.status_code == 200
    assert served.json()["predictions"] == reference.json()["predictions"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_real_uvicorn_server_answers_over_http(models: dict[str, Path]) -> None:
    port = _free_port()
    app = create_app(ModelServer(models["ecg-arrhythmia"], None, "cpu"))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        health = httpx.get(f"{base}/health", timeout=10)
        reply = httpx.post(f"{base}/predict", json={"beats": _beats(2)}, timeout=10)
        bad = httpx.post(f"{base}/predict", json={"beat": [1.0] * 7}, timeout=10)
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert reply.status_code == 200 and len(reply.json()["predictions"]) == 2
    assert bad.status_code == 422 and "7 values" in bad.json()["detail"]["error"]


def test_cli_refuses_a_missing_model_or_bad_normalisation(
    models: dict[str, Path], tmp_path: Path
) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["serve", "--model", str(tmp_path / "none")])
    (tmp_path / "stats.json").write_text('{"mean": [1, 2]')
    bad_stats = runner.invoke(
        cli,
        [
            "serve",
            "--model",
            str(models["icu-federated"]),
            "--normalisation",
            str(tmp_path / "stats.json"),
        ],
    )

    assert missing.exit_code == 2 and "card.json not found" in missing.output
    assert bad_stats.exit_code == 2 and "--normalisation" in bad_stats.output
    assert "/predict" in runner.invoke(cli, ["serve", "--help"]).output


# -- hardening (issue: only masked, noised aggregates leave a hospital) ------------


def test_oversized_bodies_get_413_before_they_are_read(models: dict[str, Path]) -> None:
    from client.serve import ServeLimits

    app = create_app(
        ModelServer(models["ecg-arrhythmia"], None, "cpu"), ServeLimits(10_000)
    )
    client = TestClient(app)
    big = client.post("/predict", json={"beats": _beats(200)})  # ~ 100 kB
    small = client.post("/predict", json={"beats": _beats(2)})

    assert big.status_code == 413 and big.json()["detail"]["field"] == "body"
    assert small.status_code == 200


def test_only_json_is_accepted(models: dict[str, Path]) -> None:
    client = _client(models["ecg-arrhythmia"])
    body = json.dumps({"beats": _beats(1)})

    form = client.post("/predict", content=body, headers={"content-type": "text/plain"})
    none = client.post("/predict", content=body.encode(), headers={"content-type": ""})

    assert form.status_code == 415 and none.status_code == 415
    assert form.json()["detail"]["expected"] == "application/json"


@pytest.mark.parametrize("value", [1e300, -3.4e38, 1e7])
def test_huge_finite_values_are_422_not_500(models: dict[str, Path], value) -> None:
    beats = _beats(1)
    beats[0][5] = value

    reply = _client(models["ecg-arrhythmia"]).post("/predict", json={"beats": beats})

    assert reply.status_code == 422
    assert reply.json()["detail"]["field"] == "beats[0][5]"


def test_docs_endpoints_are_off(models: dict[str, Path]) -> None:
    client = _client(models["ecg-arrhythmia"])
    assert [
        client.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json")
    ] == [
        404,
        404,
        404,
    ]


def test_a_token_is_required_when_configured(models: dict[str, Path]) -> None:
    from client.serve import ServeLimits

    token = "s3cret-token-of-enough-length"
    app = create_app(
        ModelServer(models["ecg-arrhythmia"], None, "cpu"), ServeLimits(token=token)
    )
    client = TestClient(app)

    assert client.get("/health").status_code == 401
    wrong = client.get("/health", headers={"authorization": "Bearer nope"})
    good = client.get("/health", headers={"authorization": f"Bearer {token}"})
    assert wrong.status_code == 401 and good.status_code == 200


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
    ],  # fmt: skip
)
def test_non_loopback_binds_need_tls_and_a_token(
    models: dict[str, Path], tmp_path: Path, host: str, ok: bool
) -> None:
    runner = CliRunner()
    token = tmp_path / "token"
    token.write_text("x" * 32)
    args = ["serve", "--model", str(models["ecg-arrhythmia"]), "--host", host]

    from client.serve import check_bind

    check_bind(host, tls=True, token="x" * 32)  # both given: any address
    if ok:
        check_bind(host, tls=False, token="")
        return
    refused = runner.invoke(cli, args)
    with_token_only = runner.invoke(cli, [*args, "--token-file", str(token)])
    assert refused.exit_code == 2 and "needs TLS" in refused.output
    assert with_token_only.exit_code == 2 and "needs TLS" in with_token_only.output
    assert "a token" not in with_token_only.output
