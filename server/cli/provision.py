"""``fedcare provision``: consortium CA, SuperLink certificate, SuperNode keys, bundles.

Sub-commands: ``init``, ``add-hospital``, ``revoke``, ``status`` (the
operator) and ``node-key`` (a hospital, on its own machine). Output is paths
and actions only; private keys are written 0600 and never printed, and the
operator never gets a hospital's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from shared_models.cli import (
    FORMAT_OPTION,
    OutputFormat,
    check_output_dir,
    emit,
    user_errors,
)

app = typer.Typer(
    help="Provision a consortium: CA, SuperLink certificate, SuperNode keys, bundles "
    "(layout: server/provision/README.md).",
    no_args_is_help=True,
)
_OUT = typer.Argument(..., help="The provisioning directory (from `provision init`).")
_FORMAT = FORMAT_OPTION


def _print_report(report: Any, fmt: OutputFormat) -> None:
    def text() -> None:
        for action, what in report.actions:
            typer.echo(f"{action:<10} {what}")
        if report.commands:
            typer.echo("\nnext:")
            for line in report.commands:
                typer.echo(f"  {line}")

    emit(report.to_json(), fmt, text)


@app.command("init")
def init_command(
    consortium: Path = typer.Argument(..., help="The consortium file (TOML)."),
    out: Path = typer.Option(
        ..., "--out", help="Directory for credentials and bundles."
    ),
    reissue_server_cert: bool = typer.Option(
        False,
        "--reissue-server-cert",
        help="Confirm re-issuing the SuperLink certificate when the aggregator hosts "
        "changed (same key; hospital bundles stay valid).",
    ),
    format: OutputFormat = _FORMAT,
) -> None:
    """Create what is missing: CA, SuperLink certificate, hospital bundles.

    Hospitals' public keys come from the consortium file (public_key); a
    hospital without one awaits its key. Existing keys are kept, never
    overwritten.
    """
    from server.provision import init

    with user_errors():
        check_output_dir(out)
        _print_report(init(consortium, out, reissue_server_cert), format)


@app.command("add-hospital")
def add_hospital_command(
    out: Path = _OUT,
    id: str = typer.Option(..., "--id", help="Hospital id (letters, digits, _ or -)."),
    name: str = typer.Option(None, "--name", help="Display name (default: the id)."),
    public_key: Path = typer.Option(
        None,
        "--public-key",
        help="The node.pub the hospital sent (from `fedcare provision node-key`; "
        "default: none yet, the hospital awaits its key).",
    ),
    rekey: bool = typer.Option(
        False, "--rekey", help="Confirm replacing a hospital's registered key."
    ),
    format: OutputFormat = _FORMAT,
) -> None:
    """Register a hospital's public key and write its bundle; others' files are
    untouched."""
    from server.provision import add_hospital

    with user_errors():
        _print_report(add_hospital(out, id, name, public_key, rekey), format)


@app.command("node-key")
def node_key_command(
    folder: Path = typer.Argument(
        ..., help="The hospital's folder for its SuperNode key (e.g. its bundle)."
    ),
    id: str = typer.Option(..., "--id", help="This hospital's id."),
    consortium: str = typer.Option(
        "", "--consortium", help="Consortium name (a comment in node.pub)."
    ),
    format: OutputFormat = _FORMAT,
) -> None:
    """At the hospital: create its SuperNode key pair (node.key stays here,
    mode 0600; send node.pub to the operator)."""
    from server.provision import node_key

    with user_errors():
        check_output_dir(folder, "FOLDER")
        _print_report(node_key(folder, id, consortium), format)


@app.command("app-hash")
def app_hash_command(
    project: Path = typer.Argument(
        Path("."), help="The Flower app folder `flwr run` is started from."
    ),
    format: OutputFormat = _FORMAT,
) -> None:
    """Print the sha256 of the app bundle `flwr run PROJECT` submits, for hospitals
    to approve (a line of their approved-apps file)."""
    from shared_models.bundle import build_bundle

    with user_errors():
        content, digest = build_bundle(project)
        payload = {"sha256": digest, "bytes": len(content), "project": str(project)}
        emit(
            payload, format, lambda: typer.echo(f"{digest}  # {project.resolve().name}")
        )


@app.command("revoke")
def revoke_command(
    out: Path = _OUT,
    id: str = typer.Option(..., "--id", help="The hospital to revoke."),
    format: OutputFormat = _FORMAT,
) -> None:
    """Mark a hospital revoked and print the `flwr supernode unregister` to run."""
    from server.provision import revoke

    with user_errors():
        _print_report(revoke(out, id), format)


@app.command("status")
def status_command(out: Path = _OUT, format: OutputFormat = _FORMAT) -> None:
    """The consortium's hospitals, their key fingerprints and status, certificates."""
    from server.provision import status

    with user_errors():
        info = status(out)

        def text() -> None:
            typer.echo(
                f"consortium {info['name']}  connection {info['connection']['address']}"
            )
            if info["superlink"]:
                typer.echo(
                    f"superlink  SANs {', '.join(info['superlink']['hosts'])}, "
                    f"valid until {info['superlink']['not_after']}"
                )
            for h in info["hospitals"]:
                files = "" if h["files_present"] else "  (bundle incomplete)"
                if h["operator_holds_private_key"]:
                    files += "  (WARNING: the operator holds its private key)"
                key = h["public_key_fingerprint"] or "awaiting key"
                nodes = ",".join(h["node_ids"]) or "not registered yet"
                typer.echo(
                    f"  {h['id']:<20} {h['status']:<8} {key}  {h['name']}"
                    f"  node {nodes}{files}"
                )

        emit(info, format, text)
