"""``fedcare provision``: certificates, hospital-held keys, idempotency,
add/revoke, CLI errors."""

from __future__ import annotations

import json
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from server.provision import ConfirmationRequired, init
from server.provision.crypto import fingerprint, load_private_key
from simulation.cli.main import app

CONSORTIUM = """\
name = "demo-consortium"
[aggregator]
hosts = ["127.0.0.1", "localhost", "aggregator.example.org"]
port = 9092
[[hospitals]]
id = "hospital_01"
name = "St Mary"
public_key = "at-hospital_01/node.pub"
[[hospitals]]
id = "hospital_02"
"""
PRIVATE = ("ca/ca.key", "operator/superlink.key")  # the operator's only secrets
runner = CliRunner()


def _cli(*args: str):
    return runner.invoke(app, ["provision", *map(str, args)])


@pytest.fixture
def provisioned(tmp_path: Path) -> tuple[Path, Path, str]:
    """hospital_01 made its key pair at home and sent node.pub; hospital_02
    has not sent one yet."""
    made = _cli("node-key", tmp_path / "at-hospital_01", "--id", "hospital_01")
    assert made.exit_code == 0, made.output
    spec = tmp_path / "consortium.toml"
    spec.write_text(CONSORTIUM)
    out = tmp_path / "out"
    result = _cli("init", spec, "--out", out)
    assert result.exit_code == 0, result.output
    return spec, out, result.output


def _hospital_key(tmp_path: Path, hospital: str):
    return load_private_key(tmp_path / f"at-{hospital}" / "node.key")


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_and_private_key_modes(provisioned) -> None:
    _, out, _ = provisioned
    for name in (
        "consortium.json",
        "ca/ca.crt",
        "operator/ca.crt",
        "operator/superlink.crt",
        "operator/start-superlink.sh",
        "operator/register-hospitals.sh",
        "operator/flwr-config.toml",
        "operator/hospitals/hospital_01.pub",
        "hospitals/hospital_01/ca.crt",
        "hospitals/hospital_01/node.pub",
        "hospitals/hospital_02/start-supernode.sh",
        "hospitals/hospital_01/node-config.txt",
        "hospitals/hospital_01/start-supernode.sh",
        *PRIVATE,
    ):
        assert (out / name).is_file(), name
    for name in PRIVATE:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name


def test_chain_verifies_and_sans_are_the_aggregator_hosts(provisioned) -> None:
    _, out, _ = provisioned
    ca = x509.load_pem_x509_certificate((out / "ca/ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate(
        (out / "operator/superlink.crt").read_bytes()
    )
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "localhost",
        "aggregator.example.org",
    ]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    # what a TLS server and client load: the key matches the certificate, the CA loads
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
        out / "operator/superlink.crt", out / "operator/superlink.key"
    )
    ssl.create_default_context(cafile=str(out / "hospitals/hospital_01/ca.crt"))


def test_hospital_keys_stay_at_the_hospital(provisioned, tmp_path: Path) -> None:
    """The operator's directory holds no hospital private key: only the
    node.pub each hospital sent; a hospital without one awaits it."""
    _, out, output = provisioned
    home = tmp_path / "at-hospital_01"
    key = _hospital_key(tmp_path, "hospital_01")
    assert (
        (home / "node.key")
        .read_bytes()
        .startswith(b"-----BEGIN OPENSSH " + b"PRIVATE KEY-----")
    )
    assert stat.S_IMODE((home / "node.key").stat().st_mode) == 0o600
    assert isinstance(key.curve, ec.SECP384R1)
    for path in out.rglob("*"):
        if path.is_file() and str(path.relative_to(out)) not in PRIVATE:
            assert b"PRIVATE KEY" not in path.read_bytes(), path
    assert not list(out.rglob("node.key"))
    pub = (out / "operator/hospitals/hospital_01.pub").read_bytes()
    assert pub == (out / "hospitals/hospital_01/node.pub").read_bytes()
    assert pub.startswith(b"ecdsa-sha2-nistp384 ")
    loaded = serialization.load_ssh_public_key(pub.rsplit(b" ", 1)[0])
    assert loaded.public_numbers() == key.public_key().public_numbers()
    state = json.loads((out / "consortium.json").read_text())
    first, second = state["hospitals"]
    assert first["public_key_fingerprint"] == fingerprint(key)
    assert second["public_key_fingerprint"] == ""
    assert "awaiting key" in output and "hospital_02" in output
    script = (out / "operator/register-hospitals.sh").read_text()
    assert "register hospital_01\n" in script and "hospital_02: awaiting" in script
    assert "hospital_02.pub" not in script
    start = (out / "hospitals/hospital_01/start-supernode.sh").read_text()
    assert "FEDCARE_NODE_KEY:-$HERE/node.key" in start


def test_a_private_key_sent_as_public_is_refused(provisioned, tmp_path: Path) -> None:
    _, out, _ = provisioned
    sent = tmp_path / "at-hospital_01" / "node.key"

    result = _cli("add-hospital", out, "--id", "hospital_02", "--public-key", sent)

    assert result.exit_code == 2 and "PRIVATE key" in result.output
    assert not (out / "operator/hospitals/hospital_02.pub").exists()


def test_another_key_for_a_registered_hospital_needs_rekey(
    provisioned, tmp_path: Path
) -> None:
    _, out, _ = provisioned
    assert _cli("node-key", tmp_path / "new", "--id", "hospital_01").exit_code == 0
    new = tmp_path / "new" / "node.pub"

    refused = _cli("add-hospital", out, "--id", "hospital_01", "--public-key", new)
    done = _cli(
        "add-hospital", out, "--id", "hospital_01", "--public-key", new, "--rekey"
    )

    assert refused.exit_code == 2 and "--rekey" in refused.output
    assert done.exit_code == 0, done.output
    state = json.loads((out / "consortium.json").read_text())
    assert state["hospitals"][0]["public_key_fingerprint"] == fingerprint(
        load_private_key(tmp_path / "new" / "node.key")
    )


def test_rerun_keeps_every_file_and_reports_kept_keys(provisioned) -> None:
    spec, out, _ = provisioned
    before = _snapshot(out)
    result = _cli("init", spec, "--out", out)
    assert result.exit_code == 0, result.output
    assert _snapshot(out) == before
    for name in PRIVATE:
        assert f"kept       {out.resolve() / name}" in result.output


def test_changed_hosts_need_confirmation_and_reissue_only_the_server_cert(
    provisioned,
) -> None:
    spec, out, _ = provisioned
    spec.write_text(CONSORTIUM.replace('"aggregator.example.org"', '"agg.example.net"'))
    before = _snapshot(out)
    result = _cli("init", spec, "--out", out)
    assert result.exit_code == 2 and "--reissue-server-cert" in result.output
    assert _snapshot(out) == before
    assert _cli("init", spec, "--out", out, "--reissue-server-cert").exit_code == 0
    after = _snapshot(out)
    changed = {k for k in before if before[k][0] != after[k][0]}
    assert changed == {"operator/superlink.crt", "consortium.json"}
    server = x509.load_pem_x509_certificate(
        (out / "operator/superlink.crt").read_bytes()
    )
    assert "agg.example.net" in str(server.extensions)
    with pytest.raises(ConfirmationRequired):
        spec.write_text(CONSORTIUM.replace('"localhost", ', ""))
        init(spec, out)


def test_add_hospital_touches_no_other_hospital(provisioned, tmp_path: Path) -> None:
    _, out, _ = provisioned
    assert _cli("node-key", tmp_path / "h3", "--id", "hospital_03").exit_code == 0
    before = _snapshot(out)
    result = _cli(
        "add-hospital", out, "--id", "hospital_03", "--name", "Royal",
        "--public-key", tmp_path / "h3" / "node.pub",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    after = _snapshot(out)
    for name, content in before.items():
        if name.startswith(("hospitals/", "ca/")) or name.endswith((".key", ".crt")):
            assert after[name] == content, name
    assert not (out / "hospitals/hospital_03/node.key").exists()
    script = (out / "operator/register-hospitals.sh").read_text()
    assert "register hospital_03\n" in script
    assert "flwr supernode register" in result.output


def test_revoke_updates_state_and_registration_script(provisioned) -> None:
    _, out, _ = provisioned
    result = _cli("revoke", out, "--id", "hospital_02")
    assert result.exit_code == 0, result.output
    assert "flwr supernode unregister" in result.output
    state = json.loads((out / "consortium.json").read_text())
    assert [h["status"] for h in state["hospitals"]] == ["active", "revoked"]
    script = (out / "operator/register-hospitals.sh").read_text()
    assert "hospital_02" not in script and "register hospital_01" in script
    again = _cli("add-hospital", out, "--id", "hospital_02")
    assert again.exit_code == 2 and "revoked" in again.output
    status = json.loads(_cli("status", out, "--format", "json").output)
    assert {h["id"]: h["status"] for h in status["hospitals"]} == {
        "hospital_01": "active",
        "hospital_02": "revoked",
    }


def test_revoke_names_the_recorded_node_ids(provisioned) -> None:
    """register-hospitals.sh records each hospital's node id (Flower keeps no
    name with a node): revoke prints the exact unregister command."""
    _, out, _ = provisioned
    ids = out / "operator" / "state" / "node-ids.tsv"
    ids.parent.mkdir(parents=True, exist_ok=True)
    ids.write_text("hospital_01\t111\nhospital_02\t222\nhospital_02\t333\n")
    result = _cli("revoke", out, "--id", "hospital_02")
    assert result.exit_code == 0, result.output
    assert "flwr supernode unregister 222 demo-consortium" in result.output
    assert "flwr supernode unregister 333 demo-consortium" in result.output
    assert "NODE_ID" not in result.output and "111" not in result.output
    status = json.loads(_cli("status", out, "--format", "json").output)
    assert {h["id"]: h["node_ids"] for h in status["hospitals"]} == {
        "hospital_01": ["111"],
        "hospital_02": ["222", "333"],
    }


def test_no_private_key_text_is_ever_printed(provisioned, tmp_path: Path) -> None:
    spec, out, first = provisioned
    outputs = [
        first,
        _cli("node-key", tmp_path / "at-hospital_01", "--id", "hospital_01").output,
        _cli("init", spec, "--out", out).output,
        _cli("add-hospital", out, "--id", "h9").output,
        _cli("revoke", out, "--id", "h9").output,
        _cli("status", out).output,
        _cli("status", out, "--format", "json").output,
    ]
    secrets = [(out / name).read_text() for name in PRIVATE]
    secrets.append((tmp_path / "at-hospital_01" / "node.key").read_text())
    for text in outputs:
        assert "PRIVATE KEY" not in text
        for secret in secrets:
            body = "".join(secret.splitlines()[1:-1])
            assert body[:40] not in text.replace("\n", "")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("name = ", "not valid TOML"),
        ('name = "x y"\n[aggregator]\nhosts = ["a"]\n', "name"),
        ('name = "c"\n', "[aggregator]"),
        ('name = "c"\n[aggregator]\nhosts = []\n', "hosts"),
        ('name = "c"\n[aggregator]\nhosts = ["bad host"]\n', "bad host"),
        ('name = "c"\n[aggregator]\nhosts = ["a"]\nport = 70000\n', "port"),
        (
            'name = "c"\n[aggregator]\nhosts = ["a"]\n[[hospitals]]\nid = "../x"\n',
            "../x",
        ),
        (
            'name = "c"\n[aggregator]\nhosts = ["a"]\n[[hospitals]]\nid = "h"\n'
            '[[hospitals]]\nid = "h"\n',
            "twice",
        ),
        ('name = "c"\nextra = 1\n[aggregator]\nhosts = ["a"]\n', "extra"),
    ],
)
def test_bad_consortium_file_is_a_clear_user_error(
    tmp_path: Path, text: str, fragment: str
) -> None:
    spec = tmp_path / "c.toml"
    spec.write_text(text)
    result = _cli("init", spec, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_missing_files_and_directories_are_user_errors(tmp_path: Path) -> None:
    assert _cli("init", tmp_path / "nope.toml", "--out", tmp_path / "o").exit_code == 2
    result = _cli("status", tmp_path)
    assert result.exit_code == 2 and "provision init" in result.output
    assert _cli("--help").exit_code == 0
