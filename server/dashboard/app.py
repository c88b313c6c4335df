"""The dashboard's HTTP app: a static page, JSON about one run folder, and
the run's exported models and report to download.

Endpoints (all ``GET`` unless said): ``/`` the page; ``/static/...`` its
script, style and the vendored chart library; ``/api/state`` everything the
page shows, which ``/api/run``, ``/api/rounds``, ``/api/hospitals``,
``/api/audit`` and ``/api/downloads`` return part by part;
``/download/models/<name>.zip``; ``/report.html``; ``POST /api/login``
(with a token: ``{"token": ...}`` sets the session cookie). No ``/docs``,
``/redoc`` or ``/openapi.json``. With a token every request but the page's
own files and the login needs ``Authorization: Bearer TOKEN`` or the cookie.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from server.dashboard import downloads as dl
from server.dashboard import run_folder
from server.dashboard.audit_view import audit_view
from server.dashboard.hospitals import AMBER, RED, hospital_rows
from shared_models.http_guard import bearer_matches, token_matches

STATIC = Path(__file__).parent / "static"
COOKIE = "fedcare_dashboard"
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
# report.html is self-contained (inline styles, data: images) and runs no script
REPORT_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'"
)
OPEN_PATHS = ("/", "/api/login")


def state(run_dir: Path) -> dict[str, Any]:
    """Everything the page shows about ``run_dir``, read afresh."""
    files = run_folder.read_folder(run_dir)
    status = run_folder.status(run_dir, files)
    finished = status["state"] == "finished"
    present = status["state"] not in ("missing", "empty")
    return {
        "run_dir": str(run_dir),
        "generated": time.time(),
        "status": status,
        "simulation": files["nodes"] is not None,
        "run": run_folder.run_info(files),
        "rounds": run_folder.metric_series(files),
        "comparison": run_folder.comparison(files),
        "hospitals": hospital_rows(files),
        "epsilon_levels": {"amber": AMBER, "red": RED},
        "audit": audit_view(run_dir, finished)
        if present
        else {"status": "none", "text": "No run yet.", "records": []},
        "downloads": dl.downloads(run_dir) if present and run_dir.is_dir() else [],
    }


def create_app(run_dir: Path, token: str = "") -> FastAPI:
    """The dashboard of ``run_dir``; with ``token``, only for who sends it."""
    run_dir = Path(run_dir).resolve()
    app = FastAPI(
        title="fedcare dashboard", docs_url=None, redoc_url=None, openapi_url=None
    )

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if token and path not in OPEN_PATHS and not path.startswith("/static/"):
            header = request.headers.get("authorization", "")
            cookie = request.cookies.get(COOKIE, "")
            if not (bearer_matches(header, token) or token_matches(cookie, token)):
                return JSONResponse(
                    {
                        "detail": "missing or wrong token: log in on the page, or send "
                        "Authorization: Bearer TOKEN"
                    },
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.post("/api/login")
    async def login(request: Request) -> JSONResponse:
        try:
            given = (await request.json()).get("token", "")
        except (ValueError, AttributeError):
            given = ""
        if not token:
            return JSONResponse({"ok": True, "needed": False})
        if not isinstance(given, str) or not token_matches(given, token):
            return JSONResponse({"detail": "wrong token"}, status_code=401)
        response = JSONResponse({"ok": True})
        response.set_cookie(
            COOKIE, token, httponly=True, secure=True, samesite="strict"
        )
        return response

    @app.get("/api/state")
    def whole() -> dict[str, Any]:
        return state(run_dir)

    def part(*keys: str) -> Any:
        def handler() -> dict[str, Any]:
            snapshot = state(run_dir)
            return {key: snapshot[key] for key in ("status", *keys)}

        return handler

    app.get("/api/run")(part("run", "simulation"))
    app.get("/api/rounds")(part("rounds", "comparison"))
    app.get("/api/hospitals")(part("hospitals", "epsilon_levels", "simulation"))
    app.get("/api/audit")(part("audit"))
    app.get("/api/downloads")(part("downloads"))

    @app.get("/download/models/{name}.zip")
    def model_zip(name: str) -> Response:
        data = dl.model_zip(run_dir, name)
        if data is None:
            return JSONResponse({"detail": "no such model"}, status_code=404)
        return Response(
            data,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}.zip"'},
        )

    @app.get("/report.html")
    def report() -> Response:
        path = dl.report_file(run_dir)
        if path is None:
            return JSONResponse({"detail": "no report yet"}, status_code=404)
        return FileResponse(
            path,
            media_type="text/html",
            headers={"Content-Security-Policy": REPORT_POLICY},
        )

    return app
