"""Who may reach a fedcare HTTP server: the bind rule and the bearer token.

``fedcare serve`` (a model inside a hospital) and ``fedcare dashboard`` (a run
on the aggregator) both bind 127.0.0.1 by default and refuse any other address
unless TLS and a token protect it; both then require the token on every
request. One rule, written once, so the two servers cannot drift apart.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from pathlib import Path

from shared_models.errors import ConfigError


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(
    host: str, tls: bool, token: str, exposes: str = "query the model"
) -> None:
    """Refuse a bind beyond loopback unless TLS and a token protect it.

    ``exposes`` finishes "without them anyone on the network could ...".
    """
    if is_loopback(host) or (tls and token):
        return
    needs = (("TLS (--tls-cert, --tls-key)", tls), ("a token (--token-file)", token))
    missing = [what for what, given in needs if not given]
    raise ConfigError(
        f"--host {host}: serving beyond loopback needs {' and '.join(missing)}; "
        f"without them anyone on the network could {exposes}. Bind "
        "127.0.0.1, or pass both."
    )


def check_tls_files(cert: Path | None, key: Path | None) -> None:
    """``--tls-cert`` and ``--tls-key``: both or neither, and both files."""
    if (cert is None) != (key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    for path in (cert, key):
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{path}: no such file")


def check_port(host: str, port: int) -> None:
    """Refuse, before anything is served, an address this machine cannot
    listen on (a port in use, an unknown host), as uvicorn would bind it."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            f"--host {host} --port {port}: cannot listen on {host}:{port} "
            f"({exc.strerror or exc}); choose a free port, or an address of "
            "this machine"
        ) from None


def read_token(path: Path) -> str:
    """The bearer token in ``path`` (one line, at least 16 characters)."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--token-file {path}: cannot read it ({exc})") from None
    if len(token) < 16 or any(c.isspace() for c in token):
        raise ConfigError(
            f"--token-file {path}: expected one token of at least 16 characters "
            "without spaces (e.g. from python -c "
            "'import secrets; print(secrets.token_urlsafe())')"
        )
    return token


def token_matches(given: str, token: str) -> bool:
    """Whether ``given`` is ``token``, compared in constant time."""
    return hmac.compare_digest(given.encode(), token.encode())


def bearer_matches(authorization: str, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>``."""
    return token_matches(authorization, f"Bearer {token}")
