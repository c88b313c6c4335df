"""The hospital's own ClientApp runner: only app bundles the hospital approved run.

A SuperNode runs whatever bundle a run was submitted with. Checking the bundle
from inside the bundle would prove nothing (a modified bundle would skip the
check), so the check lives in code the hospital installed:

- the hospital starts its SuperNode with ``--isolation process`` and, beside
  it, ``fedcare-superexec`` (Flower's own ``flower-superexec``, which launches
  one process per task), told to launch ``fedcare-clientapp`` instead of
  Flower's ``flwr-clientapp`` for ClientApp tasks, and never to install a
  bundle's dependencies;
- ``fedcare-clientapp`` is Flower's ``flwr-clientapp`` with one change: after
  it pulls the task's bundle from the SuperNode and before it unpacks it, the
  sha256 of the bundle's bytes must equal the hash the run names and be on the
  list of approved hashes in the hospital's node config (``approved-apps``, a
  file the hospital keeps; format in :func:`shared_models.bundle.read_approved`).
  Otherwise nothing of the bundle is installed or imported and the task fails;
  the aggregator gets a refusal naming only the bundle's hash.

The consortium publishes each release's hash (``fedcare provision app-hash``);
a hospital approves a release by adding that line to its list.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared_models.bundle import BundleError, bundle_sha256, read_approved
from shared_models.errors import PolicyError

logger = logging.getLogger(__name__)

APPROVED_KEY = "approved-apps"
RUNNER = "fedcare-clientapp"
REFUSER = "fedcare-refuse-task"


class AppNotApprovedError(PolicyError):
    """A run's app bundle is not on the hospital's approved list."""


@dataclass(frozen=True)
class Verdict:
    digest: str
    approved: bool
    reason: str = ""


def judge(node_config: dict[str, Any], content: bytes, named_hash: str) -> Verdict:
    """Whether this hospital runs the bundle ``content`` (named ``named_hash``)."""
    digest = bundle_sha256(content)
    where = node_config.get(APPROVED_KEY)
    if not where:
        return Verdict(
            digest,
            False,
            f"the node config has no {APPROVED_KEY!r} key: list the approved bundle "
            "hashes in a file and name it there (every bundle is refused until then)",
        )
    if digest != named_hash:
        return Verdict(
            digest, False, f"its bytes hash to {digest}, but the run names {named_hash}"
        )
    try:
        approved = read_approved(Path(str(where)))
    except BundleError as exc:
        return Verdict(digest, False, str(exc))
    if digest not in approved:
        return Verdict(digest, False, f"{digest} is not on the approved list {where}")
    return Verdict(digest, True)


class Guard:
    """Wraps Flower's ``pull_task_input`` and ``install_from_fab`` of one task."""

    def __init__(self, pull: Any, install: Any) -> None:
        self._pull = pull
        self._install = install
        self.verdict: Verdict | None = None

    def pull_task_input(self, client: Any) -> Any:
        message, context, run, fab = self._pull(client)
        self.verdict = judge(dict(context.node_config), fab.content, fab.hash_str)
        return message, context, run, fab

    def install_from_fab(self, content: bytes, *args: Any, **kwargs: Any) -> Any:
        verdict, self.verdict = self.verdict, None
        if verdict is None or bundle_sha256(content) != verdict.digest:
            verdict = Verdict(bundle_sha256(content), False, "it was not checked")
        if not verdict.approved:
            logger.error(
                "refused app bundle %s: %s; nothing of it was installed or loaded",
                verdict.digest,
                verdict.reason,
            )
            # What the aggregator learns: this bundle was refused, by hash only.
            raise AppNotApprovedError(
                f"this hospital has not approved app bundle {verdict.digest}"
            )
        logger.info("app bundle %s is on the approved list", verdict.digest)
        return self._install(content, *args, **kwargs)


def _refuse_dependency_installation(program: str) -> None:
    if "--allow-runtime-dependency-installation" in sys.argv:
        sys.exit(
            f"{program}: refusing --allow-runtime-dependency-installation: a "
            "bundle's dependencies are not installed at this hospital"
        )


def clientapp_main() -> None:
    """``fedcare-clientapp``: Flower's ``flwr-clientapp`` with the approval check."""
    from flwr.supernode.cli import flwr_clientapp
    from flwr.supernode.runtime import run_clientapp

    # The hospital's local log: fedcare's own lines at INFO, libraries at WARNING.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("client").setLevel(logging.INFO)
    _refuse_dependency_installation(RUNNER)
    guard = Guard(run_clientapp.pull_task_input, run_clientapp.install_from_fab)
    run_clientapp.pull_task_input = guard.pull_task_input
    run_clientapp.install_from_fab = guard.install_from_fab
    flwr_clientapp()


def superexec_main() -> None:
    """``fedcare-superexec``: Flower's SuperExec launching only ``fedcare-clientapp``.

    ClientApp tasks run in ``fedcare-clientapp``; every other task type a
    SuperNode could be asked to run (an AgentApp, say) runs
    ``fedcare-refuse-task``, which runs nothing.
    """
    from flwr.supercore import constant
    from flwr.supercore.cli import flower_superexec

    _refuse_dependency_installation("fedcare-superexec")
    for task_type in list(constant.TASK_TYPE_TO_COMMAND):
        constant.TASK_TYPE_TO_COMMAND[task_type] = (
            RUNNER if task_type == constant.TaskType.CLIENT_APP else REFUSER
        )
    flower_superexec()


def refuse_task_main() -> None:
    """``fedcare-refuse-task``: what ``fedcare-superexec`` runs for other tasks."""
    sys.exit(
        "fedcare-refuse-task: this hospital runs only approved ClientApp bundles; "
        "a task of another kind was refused and nothing was run"
    )
