"""``fedcare dashboard``: a run folder as a live page in the browser."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import typer

from shared_models.cli import setup_logging, user_errors
from shared_models.errors import ConfigError

_RUN_DIR = typer.Option(
    ...,
    "--run-dir",
    help="The run folder to show (RUN of fedcare simulate --out RUN, or the "
    "ServerApp's run-dir); it may not exist yet.",
)
_HOST = typer.Option(
    "127.0.0.1",
    "--host",
    help="Address to listen on (beyond loopback only with TLS and a token).",
)
_PORT = typer.Option(8050, "--port", help="TCP port.", min=1, max=65535)
_TLS_CERT = typer.Option(
    None, "--tls-cert", help="TLS certificate (PEM; default: none, plain HTTP)."
)
_TLS_KEY = typer.Option(None, "--tls-key", help="TLS private key (PEM; default: none).")
_TOKEN = typer.Option(
    None,
    "--token-file",
    help="File holding a token the browser must give once (or send as "
    "Authorization: Bearer TOKEN). Needed, with TLS, beyond loopback (default: none).",
)


def check_run_dir(run_dir: Path) -> None:
    """A run folder may be missing (a run is about to write it) or empty, but
    neither it nor a folder above it may be a regular file."""
    for place in (run_dir, *run_dir.parents):
        if place.exists():
            if not place.is_dir():
                raise ConfigError(
                    f"--run-dir {run_dir}: {place} is a file, not a folder; pass "
                    "a run folder (fedcare simulate --out RUN)"
                )
            return


def prepare(
    run_dir: Path,
    host: str,
    port: int,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    token_file: Path | None = None,
) -> tuple[Any, str]:
    """The checked app and its URL (refusals are :class:`ConfigError`)."""
    from server.dashboard import create_app
    from shared_models.http_guard import (
        check_bind,
        check_port,
        check_tls_files,
        read_token,
    )

    check_run_dir(run_dir)
    check_tls_files(tls_cert, tls_key)
    token = read_token(token_file) if token_file else ""
    check_bind(host, tls_cert is not None, token, "read the run's records")
    check_port(host, port)
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    return create_app(run_dir, token), f"{scheme}://{shown}:{port}/"


def start_in_thread(run_dir: Path, host: str, port: int) -> str:
    """Serve the dashboard of ``run_dir`` from a daemon thread (loopback, no
    token: ``fedcare simulate --dashboard``); returns its URL."""
    import uvicorn

    app, url = prepare(run_dir, host, port)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    threading.Thread(target=server.run, name="fedcare-dashboard", daemon=True).start()
    return url


def command(
    run_dir: Path = _RUN_DIR,
    host: str = _HOST,
    port: int = _PORT,
    tls_cert: Path | None = _TLS_CERT,
    tls_key: Path | None = _TLS_KEY,
    token_file: Path | None = _TOKEN,
) -> None:
    """Show RUN_DIR live: the run, its metrics, hospitals, audit log, downloads."""
    setup_logging()
    with user_errors():
        import uvicorn

        app, url = prepare(run_dir, host, port, tls_cert, tls_key, token_file)
    typer.echo(
        f"dashboard of {run_dir} on {url}"
        + (" (token required)" if token_file else "")
        + " (Ctrl+C to stop)"
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )
