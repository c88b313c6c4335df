"""The ``fedcare`` console command: one Typer app, one module per sub-command.

The composition root of the CLI: it lives in the top layer (``simulation``)
because it is the one place that may import the hospital's (``client.cli``),
the operator's (``server.cli``) and the simulation's commands together;
``client`` and ``server`` never import each other.
"""

from __future__ import annotations

import typer

from client.cli import (
    budget,
    calibrate,
    evaluate,
    ledger,
    privacy_audit,
    serve,
    train,
    validate_data,
)
from server.cli import audit, dashboard, provision
from simulation.cli import cohort, simulate

app = typer.Typer(
    name="fedcare",
    help="Privacy-preserving federated learning for hospitals.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("validate-data")(validate_data.command)
app.command("train")(train.command)
app.command("evaluate")(evaluate.command)
app.command("calibrate")(calibrate.command)
app.command("budget")(budget.command)
app.command("privacy-audit")(privacy_audit.command)
app.command("serve")(serve.command)
app.command("dashboard")(dashboard.command)
app.command("cohort")(cohort.command)
app.command("simulate")(simulate.command)
app.add_typer(provision.app, name="provision")
app.add_typer(audit.app, name="audit")
app.add_typer(ledger.app, name="ledger")


if __name__ == "__main__":  # pragma: no cover
    app()
