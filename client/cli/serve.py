"""``fedcare serve``: serve an exported model over HTTP inside the hospital."""

from __future__ import annotations

from pathlib import Path

import typer

from shared_models.cli import setup_logging, user_errors

_MODEL = typer.Option(
    ...,
    "--model",
    help="Model directory (card.json + weights), e.g. RUN/models/final.",
)
_HOST = typer.Option(
    "127.0.0.1", "--host", help="Address to listen on (keep it inside the hospital)."
)
_PORT = typer.Option(8000, "--port", help="TCP port.", min=1, max=65535)
_NORMALISATION = typer.Option(
    None,
    "--normalisation",
    help="This hospital's normalisation statistics (JSON, or a card.json of a "
    "model it trained): required for a federated ICU or signal model "
    "(default: the card's own).",
)
_DEVICE = typer.Option("auto", "--device", help="auto, cpu or cuda.")
_TLS_CERT = typer.Option(
    None, "--tls-cert", help="TLS certificate (PEM; default: none, plain HTTP)."
)
_TLS_KEY = typer.Option(None, "--tls-key", help="TLS private key (PEM; default: none).")
_TOKEN = typer.Option(
    None,
    "--token-file",
    help="File holding a bearer token every request must send "
    "(Authorization: Bearer TOKEN). Needed, with TLS, beyond loopback (default: none).",
)
_MAX_BODY = typer.Option(
    4, "--max-body-mb", min=1, max=256, help="Largest request body, in MiB (413 above)."
)


def command(
    model: Path = _MODEL,
    host: str = _HOST,
    port: int = _PORT,
    normalisation: Path | None = _NORMALISATION,
    device: str = _DEVICE,
    tls_cert: Path | None = _TLS_CERT,
    tls_key: Path | None = _TLS_KEY,
    token_file: Path | None = _TOKEN,
    max_body_mb: int = _MAX_BODY,
) -> None:
    """Serve MODEL: GET /health, GET /model, POST /predict (JSON)."""
    setup_logging()
    with user_errors():
        import uvicorn

        from client.serve import (
            ModelServer,
            ServeLimits,
            check_bind,
            check_port,
            create_app,
            load_normalisation,
            read_token,
        )
        from shared_models.http_guard import check_tls_files

        check_tls_files(tls_cert, tls_key)
        token = read_token(token_file) if token_file else ""
        check_bind(host, tls_cert is not None, token)
        check_port(host, port)
        stats = load_normalisation(normalisation) if normalisation else None
        server = ModelServer(model, stats, device)
        if server.stats is None:
            typer.echo(
                "warning: /predict will refuse requests until this model gets "
                "normalisation statistics (--normalisation STATS.json)",
                err=True,
            )
        app = create_app(server, ServeLimits(max_body_mb * 1024 * 1024, token))
    scheme = "https" if tls_cert else "http"
    typer.echo(
        f"serving {server.card.task} ({server.card.model}) on {scheme}://{host}:{port}"
        + (" (token required)" if token else "")
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )
