"""``init``, ``add-hospital``, ``revoke`` and ``status`` on a provisioning directory,
and ``node_key``, which a hospital runs on its own machine.

Idempotent: what is missing is created, an existing key is kept (and
reported), a file whose content would not change is not touched, and the only
credential ever replaced is the SuperLink certificate, when the aggregator's
hosts change and the caller confirms (``reissue_server_cert``).

The operator never holds a hospital's private key: a hospital generates its
key pair with :func:`node_key` and sends ``node.pub``; the operator registers
that public key (the consortium file's ``public_key``, or ``add-hospital
--public-key``). A hospital's bundle holds no key at all.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.x509 import Certificate

from server.provision import bundle, crypto
from server.provision.consortium import (
    REVOKED,
    Consortium,
    Hospital,
    check_hospital_id,
    load_consortium_file,
)
from server.provision.errors import ConfirmationRequired, ProvisionError


@dataclass
class Report:
    """What a provisioning command did, one ``(action, path or id)`` per line."""

    actions: list[tuple[str, str]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def add(self, action: str, what: Path | str) -> None:
        self.actions.append((action, str(what)))

    def to_json(self) -> dict[str, Any]:
        return {
            "actions": [{"action": a, "path": p} for a, p in self.actions],
            "commands": self.commands,
        }


class Layout:
    """Paths of the output layout (the contract deploy/ and the runbook use)."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out).resolve()
        self.ca_crt, self.ca_key = (
            self.out / "ca" / "ca.crt",
            self.out / "ca" / "ca.key",
        )
        self.operator = self.out / "operator"
        self.server_crt = self.operator / "superlink.crt"
        self.server_key = self.operator / "superlink.key"

    def hospital(self, hid: str) -> Path:
        return self.out / "hospitals" / hid

    def registered_pub(self, hid: str) -> Path:
        return self.operator / "hospitals" / f"{hid}.pub"


def _write(path: Path, data: bytes, report: Report, mode: int = 0o644) -> None:
    """Write a non-secret file unless it already holds exactly ``data``."""
    if path.is_file() and path.read_bytes() == data:
        return
    existed = path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    report.add("updated" if existed else "created", path)


def _key(path: Path, report: Report, openssh: bool = False):
    """The private key at ``path``: kept if present, else created with mode 0600."""
    if path.exists():
        report.add("kept", path)
        return crypto.load_private_key(path)
    key = crypto.new_key()
    crypto.write_private_key(path, key, openssh=openssh)
    report.add("created", path)
    return key


def _ca(lay: Layout, name: str, report: Report) -> tuple[Any, Certificate]:
    if lay.ca_crt.exists() and not lay.ca_key.exists():
        raise ProvisionError(
            f"{lay.ca_crt} exists without {lay.ca_key}; restore the CA "
            "key from backup (a new CA would invalidate every bundle)"
        )
    if lay.ca_key.exists() and not lay.ca_crt.exists():
        raise ProvisionError(
            f"{lay.ca_key} exists without {lay.ca_crt}; restore the CA "
            "certificate from backup"
        )
    key = _key(lay.ca_key, report)
    if lay.ca_crt.exists():
        return key, crypto.load_cert(lay.ca_crt)
    cert = crypto.issue_ca(key, name)
    _write(lay.ca_crt, crypto.pem(cert), report)
    return key, cert


def _server_cert(
    lay: Layout,
    c: Consortium,
    ca: tuple[Any, Certificate],
    reissue: bool,
    report: Report,
) -> None:
    key = _key(lay.server_key, report)
    if lay.server_crt.exists():
        old = set(crypto.cert_hosts(crypto.load_cert(lay.server_crt)))
        if old == set(c.aggregator.hosts):
            report.add("kept", lay.server_crt)
            return
        if not reissue:
            raise ConfirmationRequired(
                f"the aggregator hosts changed ({sorted(old)} -> "
                f"{c.aggregator.hosts}); "
                "re-issue the SuperLink certificate (same key, hospitals keep their "
                "bundles) with --reissue-server-cert, then restart the SuperLink"
            )
        lay.server_crt.unlink()
        report.add("reissued", lay.server_crt)
    cert = crypto.issue_server_cert(key, ca[0], ca[1], c.aggregator.hosts)
    _write(lay.server_crt, crypto.pem(cert), report)


def node_key(folder: Path, hospital_id: str, consortium: str = "") -> Report:
    """At the hospital: its SuperNode key pair in ``folder`` (``node.key``, mode
    0600, kept if present; ``node.pub`` to send to the operator)."""
    check_hospital_id(hospital_id)
    folder = Path(folder)
    report = Report()
    key = _key(folder / "node.key", report, openssh=True)
    comment = f"{hospital_id}@{consortium}" if consortium else hospital_id
    _write(folder / "node.pub", crypto.openssh_public(key, comment), report)
    report.add("fingerprint", crypto.fingerprint(key))
    report.commands.append(
        f"send {folder / 'node.pub'} (never node.key) to the operator, who runs: "
        f"fedcare provision add-hospital PROVISIONED --id {hospital_id} "
        "--public-key node.pub"
    )
    return report


def _hospital(
    lay: Layout,
    c: Consortium,
    h: Hospital,
    report: Report,
    public_key: Path | None = None,
    rekey: bool = False,
) -> None:
    folder = lay.hospital(h.id)
    source = public_key or (Path(h.public_key_file) if h.public_key_file else None)
    if source is not None:
        key = crypto.load_public_key(source)
        print_ = crypto.fingerprint(key)
        if (
            h.public_key_fingerprint
            and h.public_key_fingerprint != print_
            and not rekey
        ):
            raise ConfirmationRequired(
                f"hospital {h.id!r} is registered with key {h.public_key_fingerprint}; "
                f"{source} is another key ({print_}). Confirm with --rekey, then "
                "unregister the old SuperNode (fedcare provision revoke prints how)"
            )
        h.public_key_fingerprint = print_
        pub = crypto.openssh_public_of(key, f"{h.id}@{c.name}")
        _write(lay.registered_pub(h.id), pub, report)
        _write(folder / "node.pub", pub, report)
    elif not lay.registered_pub(h.id).is_file():
        h.public_key_fingerprint = ""
        report.add("awaiting key", h.id)
    if (folder / "node.key").exists():
        report.add("WARNING private key in the operator's bundle (delete it)",
                   folder / "node.key")  # fmt: skip
    _write(folder / "ca.crt", lay.ca_crt.read_bytes(), report)
    if not (
        folder / "node-config.txt"
    ).exists():  # the hospital edits it: never replace
        _write(folder / "node-config.txt", bundle.node_config(h.id).encode(), report)
    _write(
        folder / "start-supernode.sh",
        bundle.start_supernode(c, h.id).encode(),
        report,
        0o755,
    )


def _operator(lay: Layout, c: Consortium, report: Report) -> None:
    _write(lay.operator / "ca.crt", lay.ca_crt.read_bytes(), report)
    _write(
        lay.operator / "start-superlink.sh",
        bundle.start_superlink(c).encode(),
        report,
        0o755,
    )
    _write(
        lay.operator / "start-proxy.sh", bundle.start_proxy(c).encode(), report, 0o755
    )
    _write(lay.operator / "nginx.conf.in", bundle.proxy_config(c).encode(), report)
    _write(
        lay.operator / "register-hospitals.sh",
        bundle.register_hospitals(c).encode(),
        report,
        0o755,
    )
    _write(
        lay.operator / "flwr-config.toml",
        bundle.flwr_config(c, str(lay.operator / "ca.crt")).encode(),
        report,
    )
    state = json.dumps(c.to_json(), indent=2) + "\n"
    _write(lay.out / "consortium.json", state.encode(), report)


def init(consortium_file: Path, out: Path, reissue_server_cert: bool = False) -> Report:
    """Create (or complete) the consortium's credentials and bundles in ``out``."""
    spec = load_consortium_file(consortium_file)
    lay, report = Layout(out), Report()
    state = spec
    if (lay.out / "consortium.json").exists():
        state = Consortium.load(lay.out)
        if state.name != spec.name:
            raise ProvisionError(
                f"{out} holds consortium {state.name!r}, not {spec.name!r}; "
                "use another --out directory"
            )
        state.aggregator = spec.aggregator
        for h in spec.hospitals:
            known = state.hospital(h.id)
            if known is None:
                state.hospitals.append(h)
            elif known.status == REVOKED:
                report.add("skipped (revoked)", h.id)
            elif h.public_key_file:
                known.public_key_file = h.public_key_file
        for h in state.hospitals:
            if spec.hospital(h.id) is None:
                report.add("kept (not in consortium file)", h.id)
    ca = _ca(lay, state.name, report)
    _server_cert(lay, state, ca, reissue_server_cert, report)
    for h in state.active():
        _hospital(lay, state, h, report)
    _operator(lay, state, report)
    return report


def add_hospital(
    out: Path,
    hospital_id: str,
    name: str | None = None,
    public_key: Path | None = None,
    rekey: bool = False,
) -> Report:
    """Register one more hospital's public key and write its bundle; nobody
    else's files change. Without ``public_key`` the hospital awaits its key."""
    check_hospital_id(hospital_id)
    lay, report = Layout(out), Report()
    state = Consortium.load(lay.out)
    known = state.hospital(hospital_id)
    if known is not None and known.status == REVOKED:
        raise ProvisionError(
            f"hospital {hospital_id!r} was revoked; revoked ids are not "
            "reused, add it under a new id"
        )
    if known is None:
        known = Hospital(hospital_id, name or hospital_id)
        state.hospitals.append(known)
    _hospital(lay, state, known, report, public_key, rekey)
    _operator(lay, state, report)
    if known.public_key_fingerprint:
        report.commands.append(
            f"flwr supernode register {lay.registered_pub(hospital_id)} "
            f"{state.name} --name {hospital_id}"
        )
    else:
        report.commands.append(
            f"at hospital {hospital_id}: fedcare provision node-key FOLDER --id "
            f"{hospital_id}; then here: fedcare provision add-hospital {lay.out} "
            f"--id {hospital_id} --public-key node.pub"
        )
    return report


def revoke(out: Path, hospital_id: str) -> Report:
    """Mark ``hospital_id`` revoked and drop it from the registration script."""
    lay, report = Layout(out), Report()
    state = Consortium.load(lay.out)
    known = state.hospital(hospital_id)
    if known is None:
        raise ProvisionError(
            f"no hospital {hospital_id!r} in {out}; known: "
            f"{[h.id for h in state.hospitals]}"
        )
    if known.status != REVOKED:
        known.status = REVOKED
        report.add("revoked", hospital_id)
    else:
        report.add("already revoked", hospital_id)
    _operator(lay, state, report)
    ids = _node_ids(lay).get(hospital_id)
    report.commands.extend(bundle.unregister_commands(state, hospital_id, ids))
    return report


def _node_ids(lay: Layout) -> dict[str, list[str]]:
    path = lay.operator / bundle.NODE_IDS
    return bundle.read_node_ids(path.read_text()) if path.is_file() else {}


def status(out: Path) -> dict[str, Any]:
    """The consortium state plus what is on disk (certificates, key files)."""
    lay = Layout(out)
    state = Consortium.load(lay.out)
    info = state.to_json()
    info["directory"] = str(lay.out)
    info["connection"] = {
        "name": state.name,
        "address": state.aggregator.address,
        "control_address": state.aggregator.control_address,
    }
    node_ids = _node_ids(lay)
    for label, path in (("ca", lay.ca_crt), ("superlink", lay.server_crt)):
        cert = crypto.load_cert(path) if path.is_file() else None
        info[label] = (
            None
            if cert is None
            else {
                "path": str(path),
                "subject": cert.subject.rfc4514_string(),
                "not_after": cert.not_valid_after_utc.isoformat(),
                **({"hosts": crypto.cert_hosts(cert)} if label == "superlink" else {}),
            }
        )
    for h in info["hospitals"]:
        folder = lay.hospital(h["id"])
        h["bundle"] = str(folder)
        h["key"] = "registered" if h["public_key_fingerprint"] else "awaiting"
        h["node_ids"] = node_ids.get(h["id"], [])  # from register-hospitals.sh
        h["operator_holds_private_key"] = (folder / "node.key").exists()
        h["files_present"] = all(
            (folder / f).is_file()
            for f in ("ca.crt", "node-config.txt", "start-supernode.sh")
        )
    return info
