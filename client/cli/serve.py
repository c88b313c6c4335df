"""``fedcare serve``: serve an exported model over HTTP inside the hospital."""

from __future__ import annotations

from pathlib import Path

import typer

from client.cli.common import setup_logging, user_errors

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
    "model it trained): required for a federated ICU or signal model.",
)
_DEVICE = typer.Option("auto", "--device", help="auto, cpu or cuda.")


def command(
    model: Path = _MODEL,
    host: str = _HOST,
    port: int = _PORT,
    normalisation: Path | None = _NORMALISATION,
    device: str = _DEVICE,
) -> None:
    """Serve MODEL: GET /health, GET /model, POST /predict (JSON)."""
    setup_logging()
    with user_errors():
        import uvicorn

        from client.serve import ModelServer, create_app, load_normalisation

        stats = load_normalisation(normalisation) if normalisation else None
        server = ModelServer(model, stats, device)
        if server.stats is None:
            typer.echo(
                "warning: /predict will refuse requests until this model gets "
                "normalisation statistics (--normalisation STATS.json)",
                err=True,
            )
        app = create_app(server)
    typer.echo(
        f"serving {server.card.task} ({server.card.model}) on http://{host}:{port}"
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
