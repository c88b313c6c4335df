"""Keys and certificates of a consortium, built on ``cryptography``.

- the consortium CA: EC P-384, ``CA:TRUE, pathlen:0``, 10 years;
- the SuperLink's server certificate, signed by the CA, with the aggregator's
  DNS names and IP addresses as SANs;
- one SuperNode authentication key pair per hospital: ECDSA P-384, both
  halves in OpenSSH format (what ``flower-supernode`` and ``flwr supernode
  register`` read).

Private keys are written with mode 0600 (created with that mode, never
widened) and are never returned as text to a caller that prints.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from server.provision.errors import ProvisionError

CURVE = ec.SECP384R1
CA_DAYS, SERVER_DAYS = 3650, 825


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(CURVE())


def write_private_key(
    path: Path, key: ec.EllipticCurvePrivateKey, openssh: bool = False
) -> None:
    """Write ``key`` to a new file created with mode 0600 (refuses to overwrite)."""
    fmt = (
        serialization.PrivateFormat.OpenSSH
        if openssh
        else serialization.PrivateFormat.PKCS8
    )
    data = key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)  # the umask can only narrow, but be explicit


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    data = path.read_bytes()
    try:
        if data.startswith(b"-----BEGIN OPENSSH PRIVATE KEY"):
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ProvisionError(
            f"{path} is not a readable unencrypted private key ({exc}); "
            "restore it from backup or remove it to issue a new one"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ProvisionError(f"{path} holds a {type(key).__name__}, expected an EC key")
    return key


def openssh_public(key: ec.EllipticCurvePrivateKey, comment: str) -> bytes:
    line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return line + b" " + comment.encode() + b"\n"


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """A hospital's OpenSSH public key line (``ecdsa-sha2-nistp384 AAAA... id``)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot read the public key ({exc})") from None
    if b"PRIVATE KEY" in data:
        raise ProvisionError(
            f"{path} holds a PRIVATE key: a hospital sends only node.pub; its "
            "node.key never leaves the hospital. Delete this copy."
        )
    try:
        key = serialization.load_ssh_public_key(data.strip())
    except (ValueError, TypeError, IndexError) as exc:
        raise ProvisionError(
            f"{path} is not an OpenSSH public key ({exc}); send the node.pub that "
            "`fedcare provision node-key` wrote"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
        key.curve, CURVE
    ):
        raise ProvisionError(
            f"{path} holds a {type(key).__name__}; expected an EC key on "
            f"{CURVE.name} (from `fedcare provision node-key`)"
        )
    return key


def openssh_public_of(key: ec.EllipticCurvePublicKey, comment: str) -> bytes:
    line = key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return line + b" " + comment.encode() + b"\n"


def fingerprint(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """The OpenSSH fingerprint (``SHA256:...``, as ``ssh-keygen -l`` prints it)."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    blob = public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).split()[1]
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _ski(key: ec.EllipticCurvePrivateKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def issue_ca(key: ec.EllipticCurvePrivateKey, consortium: str) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, consortium),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{consortium} CA"),
        ]
    )
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(_ski(key), critical=False)
        .sign(key, hashes.SHA384())
    )


def san_entries(hosts: list[str]) -> list[x509.GeneralName]:
    """IP addresses become IP SANs, everything else a DNS SAN."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue_server_cert(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hosts: list[str],
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(san_entries(hosts)), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(_ski(key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA384())
    )


def cert_hosts(cert: x509.Certificate) -> list[str]:
    """The SANs of ``cert`` as strings (DNS names and IP addresses)."""
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + [
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    ]


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError as exc:
        raise ProvisionError(f"{path} is not a PEM certificate ({exc})") from None
