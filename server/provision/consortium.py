"""The consortium file (TOML, what the operator writes) and the state file
(``DIR/consortium.json``, what provisioning keeps).

Consortium file::

    name = "demo-consortium"
    [aggregator]
    hosts = ["127.0.0.1", "localhost"]   # SANs of the SuperLink certificate
    port = 9092            # hospitals: the proxy's Fleet-only listener
    control_port = 9093    # the operator's flwr: the proxy's Control-only listener
    internal_port = 9091   # the SuperLink itself, on 127.0.0.1 behind the proxy
    [[hospitals]]
    id = "hospital_01"
    name = "St Mary"
    public_key = "keys/hospital_01.pub"  # node.pub from the hospital (optional)

A hospital generates its own key pair (``fedcare provision node-key``) and
sends only ``node.pub``; until the operator has it, the hospital is provisioned
without a key ("awaiting key") and left out of the registration script.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from server.provision.errors import ConsortiumFileError, ProvisionError
from shared_models.atomic import atomic_write_text

IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
DNS = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
STATE_FILE = "consortium.json"
ACTIVE, REVOKED = "active", "revoked"


@dataclass(frozen=True)
class Aggregator:
    """Where the aggregator listens.

    Hospitals dial ``port`` (the proxy's Fleet-only listener); the operator's
    ``flwr`` dials ``control_port`` (the proxy's Control-only listener, on the
    operator's network); the SuperLink itself listens on 127.0.0.1:
    ``internal_port``, behind the proxy.
    """

    hosts: list[str]
    port: int = 9092
    control_port: int = 9093
    internal_port: int = 9091

    def _at(self, port: int) -> str:
        host = self.hosts[0]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def address(self) -> str:
        """``host:port`` hospitals' SuperNodes dial (Fleet API only)."""
        return self._at(self.port)

    @property
    def control_address(self) -> str:
        """``host:port`` the operator's ``flwr`` dials (Control API only)."""
        return self._at(self.control_port)


@dataclass
class Hospital:
    id: str
    name: str
    public_key_fingerprint: str = ""
    status: str = ACTIVE
    public_key_file: str = ""  # where the operator got node.pub (consortium file)


@dataclass
class Consortium:
    name: str
    aggregator: Aggregator
    hospitals: list[Hospital] = field(default_factory=list)

    def hospital(self, hospital_id: str) -> Hospital | None:
        return next((h for h in self.hospitals if h.id == hospital_id), None)

    def active(self) -> list[Hospital]:
        return [h for h in self.hospitals if h.status == ACTIVE]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "aggregator": asdict(self.aggregator),
            "hospitals": [asdict(h) for h in self.hospitals],
        }

    def save(self, out: Path) -> None:
        atomic_write_text(out / STATE_FILE, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, out: Path) -> Consortium:
        path = out / STATE_FILE
        if not path.is_file():
            raise ProvisionError(
                f"{out} is not a provisioned consortium ({STATE_FILE} "
                "missing); run `fedcare provision init CONSORTIUM.toml "
                f"--out {out}` first"
            )
        known = {f.name for f in fields(Hospital)}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                raw["name"],
                Aggregator(**raw["aggregator"]),
                [
                    Hospital(**{k: v for k, v in h.items() if k in known})
                    for h in raw["hospitals"]
                ],  # fmt: skip
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProvisionError(
                f"{path}: not the state fedcare provision writes ({exc!r}); "
                "restore it from a backup, or provision again in a new folder"
            ) from None


def check_hospital_id(hospital_id: object, where: str = "hospital id") -> str:
    if not isinstance(hospital_id, str) or not IDENT.match(hospital_id):
        raise ConsortiumFileError(
            f"{where} {hospital_id!r} is not allowed: use 1-64 letters, digits, '_' or "
            "'-', starting with a letter or digit (it names files and the SuperNode)"
        )
    return hospital_id


def load_consortium_file(path: Path) -> Consortium:
    """Parse and validate a consortium TOML file (errors name the file and the key)."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConsortiumFileError(f"consortium file {path} does not exist") from None
    except IsADirectoryError:
        raise ConsortiumFileError(
            f"consortium file {path} is a folder; pass the consortium's TOML file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConsortiumFileError(
            f"consortium file {path} cannot be read as UTF-8 text ({exc}); pass "
            "the consortium's TOML file"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConsortiumFileError(f"{path} is not valid TOML: {exc}") from None
    _no_unknown(raw, {"name", "aggregator", "hospitals"}, f"{path}")
    name = raw.get("name")
    if not isinstance(name, str) or not IDENT.match(name):
        raise ConsortiumFileError(
            f"{path}: name = {name!r}; give the consortium a name of letters, digits, "
            "'_' or '-' (it becomes the flwr connection name)"
        )
    return Consortium(
        name,
        _aggregator(raw.get("aggregator"), path),
        _hospitals(raw.get("hospitals", []), path),
    )


def _no_unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConsortiumFileError(
            f"{where}: unknown key(s) {unknown}; known: {sorted(known)}"
        )


def _aggregator(raw: Any, path: Path) -> Aggregator:
    if not isinstance(raw, dict):
        raise ConsortiumFileError(
            f"{path}: missing [aggregator] table with hosts and port"
        )
    _no_unknown(
        raw, {"hosts", "port", "control_port", "internal_port"}, f"{path} [aggregator]"
    )
    hosts = raw.get("hosts")
    if (
        not isinstance(hosts, list)
        or not hosts
        or not all(isinstance(h, str) for h in hosts)
    ):
        raise ConsortiumFileError(
            f"{path}: [aggregator] hosts = {hosts!r}; give a non-empty list of the "
            "SuperLink's DNS names and/or IP addresses, "
            'e.g. ["aggregator.example.org"]'
        )
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not DNS.match(host):
                raise ConsortiumFileError(
                    f"{path}: [aggregator] host {host!r} is neither an IP address nor "
                    "a DNS name"
                ) from None
    if len(set(hosts)) != len(hosts):
        raise ConsortiumFileError(f"{path}: [aggregator] hosts has duplicates: {hosts}")
    ports = {}
    for key, default in (
        ("port", 9092),
        ("control_port", 9093),
        ("internal_port", 9091),
    ):
        value = raw.get(key, default)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 1 <= value <= 65535
        ):
            raise ConsortiumFileError(
                f"{path}: [aggregator] {key} = {value!r}; use 1-65535"
            )
        ports[key] = value
    if len(set(ports.values())) != len(ports):
        raise ConsortiumFileError(
            f"{path}: [aggregator] port, control_port and internal_port must differ "
            f"(hospitals, the operator and the SuperLink behind the proxy): {ports}"
        )
    return Aggregator(list(hosts), **ports)


def _hospitals(raw: Any, path: Path) -> list[Hospital]:
    if not isinstance(raw, list):
        raise ConsortiumFileError(
            f"{path}: hospitals must be an array of tables "
            "([[hospitals]] with id and name)"
        )
    out: list[Hospital] = []
    for i, entry in enumerate(raw):
        where = f"{path} hospitals[{i}]"
        if not isinstance(entry, dict):
            raise ConsortiumFileError(f"{where}: expected a table with id and name")
        _no_unknown(entry, {"id", "name", "public_key"}, where)
        hid = check_hospital_id(entry.get("id"), f"{where} id")
        name = entry.get("name", hid)
        if not isinstance(name, str) or not name.strip():
            raise ConsortiumFileError(
                f"{where}: name = {name!r}; give a non-empty string"
            )
        if any(h.id == hid for h in out):
            raise ConsortiumFileError(f"{where}: hospital id {hid!r} appears twice")
        key = entry.get("public_key", "")
        if not isinstance(key, str):
            raise ConsortiumFileError(
                f"{where}: public_key = {key!r}; give the path of the hospital's "
                "node.pub (relative to this file)"
            )
        key_file = str((Path(path).parent / key).resolve()) if key else ""
        out.append(Hospital(hid, name, public_key_file=key_file))
    return out
