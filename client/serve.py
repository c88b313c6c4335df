"""``fedcare serve``: an exported model behind a small HTTP API inside the hospital.

The model directory (``shared_models.export`` format: a federated run's
``RUN/models/final`` or a ``fedcare train --out`` folder) is loaded once, as
the plain (non-DP) variant, on CUDA when present. Endpoints:

- ``GET /health``: status, model, task, weights sha256, device, what to POST;
- ``GET /model``: the model card without its training-data summary;
- ``POST /predict``: a JSON body (see ``client.serve_schema``), answered with
  class probabilities and the label at the card's threshold, days for
  length of stay, or an anomaly score with the threshold for autoencoders.

Hardening (:class:`ServeLimits`): bodies above ``max_body_bytes`` get 413
before they are read whole, a content type other than JSON 415, values
outside ``+-MAX_ABS_VALUE`` or outputs that are not finite 422 (never 500);
no ``/docs``, ``/redoc`` or ``/openapi.json``; with a token every request
needs ``Authorization: Bearer <token>`` (401 otherwise). ``fedcare serve``
refuses to bind beyond loopback without TLS and a token.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from client.serve_schema import (
    RequestError,
    data_kind,
    expected_shape,
    missing_stats_message,
    parse_inputs,
    stats_for,
)
from client.tasks import get_task
from client.training import resolve_device
from shared_models.errors import ConfigError
from shared_models.export import ModelCard, load_model_dir
from shared_models.http_guard import (  # noqa: F401  (fedcare serve's checks)
    bearer_matches,
    check_bind,
    check_port,
    is_loopback,
    read_token,
)

log = logging.getLogger(__name__)
BATCH = 512
MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ServeLimits:
    """What a request may be: its size, and the token it must carry (if any)."""

    max_body_bytes: int = MAX_BODY_BYTES
    token: str = ""


def load_normalisation(path: Path) -> dict[str, Any]:
    """A hospital's statistics: a JSON object of them, or a card.json holding them."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--normalisation {path}: cannot read JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("normalisation"), dict):
        data = data["normalisation"]
    if not isinstance(data, dict):
        raise ConfigError(f"--normalisation {path}: expected a JSON object")
    return data


class ModelServer:
    """One loaded model and its card; turns parsed inputs into predictions."""

    def __init__(
        self,
        model_dir: Path,
        normalisation: dict[str, Any] | None = None,
        device: str = "auto",
    ) -> None:
        self.model_dir = Path(model_dir)
        model, card = load_model_dir(self.model_dir, dp=False)
        self.card: ModelCard = card
        self.kind = get_task(card.task).kind
        data_kind(card.task)  # a task we cannot serve fails at start-up
        self.stats = stats_for(card, normalisation)
        if normalisation is not None and self.stats:
            self._check_stats(normalisation)
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        log.info(
            "serving %s (%s) from %s on %s",
            card.model,
            card.task,
            self.model_dir,
            self.device,
        )

    def _check_stats(self, stats: dict[str, Any]) -> None:
        n = int(self.card.input_spec["n_features"])
        for key, value in self.stats.items():
            if not isinstance(value, list) or len(value) != n:
                raise ConfigError(
                    f"normalisation {key!r} has "
                    f"{len(value) if isinstance(value, list) else value!r} value(s); "
                    f"the model has {n} feature(s)"
                )

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.stats is not None else "needs-normalisation",
            "model": self.card.model,
            "task": self.card.task,
            "weights_sha256": self.card.weights_sha256,
            "device": str(self.device),
            "threshold": self.card.threshold,
            "threshold_source": self.card.threshold_source or "unknown",
            "input": expected_shape(self.card),
            **(
                {}
                if self.stats is not None
                else {"problem": missing_stats_message(self.card)}
            ),
        }

    def public_card(self) -> dict[str, Any]:
        card = asdict(self.card)
        card.pop("training_data", None)
        return card

    @torch.no_grad()
    def predict(self, body: Any) -> dict[str, Any]:
        x = parse_inputs(body, self.card, self.stats)
        outputs = [
            self.model.predict(
                torch.as_tensor(
                    x[i : i + BATCH], dtype=torch.float32, device=self.device
                )
            ).cpu()
            for i in range(0, len(x), BATCH)
        ]
        out = torch.cat(outputs).numpy()
        if not np.all(np.isfinite(out)):
            raise RequestError(
                "inputs",
                "the model's output is not finite for these values",
                "values in the range the model was trained on",
            )
        return {
            "model": self.card.model,
            "task": self.card.task,
            "weights_sha256": self.card.weights_sha256,
            "count": len(x),
            "threshold": self._threshold(),
            "predictions": self._describe(out),
        }

    def _threshold(self) -> float | None:
        if self.kind == "binary":
            return 0.5 if self.card.threshold is None else float(self.card.threshold)
        return None if self.card.threshold is None else float(self.card.threshold)

    def _describe(self, out: np.ndarray) -> list[dict[str, Any]]:
        if self.kind == "regression":
            return [{"days": float(v)} for v in out]
        if self.kind == "reconstruction":
            t = self._threshold()
            return [
                {
                    "anomaly_score": float(s),
                    "threshold": t,
                    "is_anomaly": bool(t is not None and s > t),
                }
                for s in out
            ]
        classes = self.card.classes or [str(k) for k in range(out.shape[1])]
        result = []
        for probs in out:
            if self.kind == "binary":
                label = classes[1] if probs[1] >= self._threshold() else classes[0]
            else:
                label = classes[int(np.argmax(probs))]
            result.append(
                {
                    "probabilities": {
                        c: float(p) for c, p in zip(classes, probs, strict=True)
                    },
                    "label": label,
                }
            )
        return result


def create_app(server: ModelServer, limits: ServeLimits | None = None) -> FastAPI:
    """The FastAPI app around ``server`` (thin: parsing and scoring live above)."""
    limits = limits or ServeLimits()
    app = FastAPI(
        title="fedcare serve",
        description=f"{server.card.task} with {server.card.model}",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Any:
        if limits.token:
            given = request.headers.get("authorization", "")
            if not bearer_matches(given, limits.token):
                error = RequestError(
                    "authorization", "missing or wrong token", "Bearer <token>", 401
                )
                return JSONResponse(
                    {"detail": error.detail()},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return server.health()

    @app.get("/model")
    def model_card() -> dict[str, Any]:
        return server.public_card()

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        try:
            body = await _json_body(request, limits.max_body_bytes)
            return JSONResponse(await run_in_threadpool(server.predict, body))
        except RequestError as exc:
            return JSONResponse({"detail": exc.detail()}, status_code=exc.status)

    return app


async def _json_body(request: Request, limit: int) -> Any:
    """The request's JSON, read in chunks up to ``limit`` bytes (413 above it)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise RequestError(
            "content-type", f"got {kind or 'none'!r}", "application/json", 415
        )
    too_big = RequestError(
        "body", "is too large", f"at most {limit} bytes (split the request)", 413
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(
            "body", f"not valid JSON ({exc})", "a JSON object", 400
        ) from None
