"""Static checks of deploy/ (no container engine needed).

The compose files, Kubernetes manifests, Dockerfiles, container scripts and the
runbook must parse, reference files that exist, pass only flags the installed
``flower-superlink``/``flower-supernode`` accept (none deprecated), keep TLS and
SuperNode authentication on everywhere except the insecure local overlay, use
the node-config keys ``client.federated.NodeSettings`` reads, and hold no
private key.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from flwr.common.config import parse_config_args

from client.federated import NodeSettings
from server.provision import bundle, load_consortium_file

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
INSECURE = DEPLOY / "compose" / "docker-compose.insecure-local.yml"
K8S = DEPLOY / "k8s"
DOCKERFILES = sorted((DEPLOY / "docker").glob("*.Dockerfile"))
SCRIPTS = sorted((DEPLOY / "docker").glob("*.sh"))
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"
BINARIES = ("flower-superlink", "flower-supernode")
# What the default deployment must pass (file names of `fedcare provision`'s
# bundles, mounted at /bundle).
SECURE_FLAGS = {
    "flower-superlink": {
        "--ssl-ca-certfile",
        "--ssl-certfile",
        "--ssl-keyfile",
        "--enable-supernode-auth",
        "--disable-runtime-dependency-installation",
    },
    "flower-supernode": {
        "--root-certificates",
        "--auth-supernode-private-key",
        "--isolation",
        "--node-config",
        "--port",
        "--max-retries",
    },
}
BUNDLE_FILES = {
    "--ssl-ca-certfile": "/bundle/ca.crt",
    "--ssl-certfile": "/bundle/superlink.crt",
    "--ssl-keyfile": "/bundle/superlink.key",
    "--root-certificates": "/bundle/ca.crt",
    "--auth-supernode-private-key": "/key/node.key",  # the hospital's own
}
# Flower 1.42 deprecations, also caught from --help ("deprecated" in the text).
DEPRECATED = {
    "--fleet-api-address",
    "--control-api-address",
    "--auth-list-public-keys",
    "--fleet-api-type",
    "--allow-runtime-dependency-installation",
    "--auth-supernode-public-key",
}


class ComposeLoader(yaml.SafeLoader):
    """SafeLoader that also reads Compose's ``!override`` and ``!reset`` tags."""


def _compose_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return loader.construct_scalar(node)


for _tag in ("!override", "!reset"):
    ComposeLoader.add_constructor(_tag, _compose_tag)


def load_yaml(path: Path) -> list[Any]:
    return [d for d in yaml.load_all(path.read_text(), Loader=ComposeLoader) if d]


@functools.cache
def _help_texts() -> dict[str, str]:
    """``--help`` of both installed binaries, run side by side (each takes seconds)."""
    procs = {
        b: subprocess.Popen(
            [str(Path(sys.executable).parent / b), "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for b in BINARIES
    }
    texts = {b: p.communicate(timeout=120)[0] for b, p in procs.items()}
    assert all(p.returncode == 0 for p in procs.values()), "--help failed"
    return texts


@functools.cache
def accepted_flags(binary: str) -> tuple[frozenset[str], frozenset[str]]:
    """(all flags, deprecated flags) from the installed binary's ``--help``."""
    out = _help_texts()[binary]
    flags, deprecated, current = set(), set(), None
    for line in out.splitlines():
        match = re.match(r"^\s{2}(?:-\w, )?(--[a-z0-9-]+)", line)
        if match:
            current = match.group(1)
            flags.add(current)
        if current and "deprecated" in line.lower():
            deprecated.add(current)
    assert "--help" in flags and len(flags) > 10, f"could not parse {binary} --help"
    return frozenset(flags), frozenset(deprecated)


def _dockerfile_cmd(path: Path) -> list[str] | None:
    text = path.read_text().replace("\\\n", " ")
    cmds = re.findall(r"^CMD (\[.*\])\s*$", text, flags=re.MULTILINE)
    return json.loads(cmds[-1]) if cmds else None


def _script_command(path: Path) -> list[str] | None:
    text = path.read_text().replace("\\\n", " ")
    match = re.search(r"^exec (flower-super\w+ .*)$", text, flags=re.MULTILINE)
    return shlex.split(match.group(1)) if match else None


def _runbook_commands() -> list[list[str]]:
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", RUNBOOK.read_text(), re.DOTALL)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.split(" ", 1)[0] in BINARIES:
                commands.append(shlex.split(line, comments=True))
    return commands


def _k8s_commands() -> dict[str, list[str]]:
    commands = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_yaml(path):
            spec = doc.get("spec", {}).get("template", {}).get("spec", {})
            for container in spec.get("containers", []):
                commands[f"{path.name}:{container['name']}"] = container["command"]
    return commands


def compose_services(path: Path) -> dict[str, dict[str, Any]]:
    return load_yaml(path)[0]["services"]


def all_commands() -> dict[str, list[str]]:
    """Every flower-superlink/flower-supernode command line in deploy/ and docs."""
    found: dict[str, list[str]] = {}
    for path in (COMPOSE, INSECURE):
        for name, svc in compose_services(path).items():
            found[f"{path.name}:{name}"] = svc.get("command")
    for path in DOCKERFILES:
        found[path.name] = _dockerfile_cmd(path)
    for path in SCRIPTS:
        found[path.name] = _script_command(path)
    found.update(_k8s_commands())
    for i, cmd in enumerate(_runbook_commands()):
        found[f"RUNBOOK.md:{i}:{cmd[0]}"] = cmd
    return {k: v for k, v in found.items() if v and v[0] in BINARIES}


def flags_of(command: list[str]) -> list[str]:
    return [t.split("=", 1)[0] for t in command[1:] if t.startswith("--")]


def value_of(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_commands_are_found_everywhere() -> None:
    names = set(all_commands())
    assert {
        "docker-compose.yml:aggregator",
        "docker-compose.yml:hospital-01",
        "aggregator.Dockerfile",
        "start-supernode.sh",
        "deployment.yaml:superlink",
    } <= names
    assert any(n.startswith("RUNBOOK.md") for n in names), "runbook shows no command"


@pytest.mark.parametrize("name, command", sorted(all_commands().items()))
def test_flags_accepted_and_not_deprecated(name: str, command: list[str]) -> None:
    flags, deprecated = accepted_flags(command[0])
    used = flags_of(command)
    assert set(used) <= flags, f"{name}: {set(used) - flags} unknown to {command[0]}"
    bad = set(used) & (deprecated | DEPRECATED)
    assert not bad, f"{name}: deprecated flags {bad}"


def test_deprecated_flags_are_seen_in_help() -> None:
    _, deprecated = accepted_flags("flower-superlink")
    assert {"--fleet-api-address", "--auth-list-public-keys"} <= deprecated


@pytest.mark.parametrize(
    "path", [COMPOSE, INSECURE, *sorted(K8S.glob("*.yaml"))], ids=lambda p: p.name
)
def test_yaml_parses(path: Path) -> None:
    docs = load_yaml(path)
    assert docs and all(isinstance(d, dict) for d in docs)
    if path.parent == K8S:
        assert all({"apiVersion", "kind"} <= set(d) for d in docs)


def test_secure_by_default() -> None:
    secure = {
        k: v for k, v in all_commands().items() if not k.startswith(INSECURE.name)
    }
    for name, command in secure.items():
        used = set(flags_of(command))
        assert "--insecure" not in used, f"{name} runs without TLS"
        missing = SECURE_FLAGS[command[0]] - used
        if name.startswith("RUNBOOK.md"):
            missing -= {"--node-config", "--port", "--max-retries"}
        assert not missing, f"{name} lacks {missing}"


def test_bundle_paths_are_the_provisioned_file_names() -> None:
    for name, command in all_commands().items():
        if name.startswith(("RUNBOOK.md", INSECURE.name)):
            continue
        for flag, path in BUNDLE_FILES.items():
            if flag in command:
                assert value_of(command, flag) == path, f"{name} {flag}"


def test_insecure_only_in_the_named_overlay() -> None:
    assert "insecure" in INSECURE.name
    overlay = compose_services(INSECURE)
    for name in ("aggregator", "hospital-01", "hospital-02", "hospital-03"):
        used = set(flags_of(overlay[name]["command"]))
        assert "--insecure" in used, name
        assert not used & {"--enable-supernode-auth", "--auth-supernode-private-key"}
    for name, svc in overlay.items():
        if svc.get("command", [""])[0] == "flower-supernode":
            assert "--max-retries" in svc["command"], f"{name} would retry forever"
    # the only plaintext elsewhere: the hospital runner's loopback Runtime API
    runner = re.compile(r"--runtime-api-address\W+127\.0\.0\.1:\S+\W+--insecure")
    for path in [COMPOSE, *DOCKERFILES, *SCRIPTS, *K8S.glob("*.yaml")]:
        text = runner.sub("", path.read_text())
        assert "--insecure" not in text, path


def test_the_superlink_is_reachable_only_through_the_proxy() -> None:
    """Every SuperLink binds loopback (except the plaintext local overlay); the
    proxy shares its network namespace and serves Fleet and Control apart."""
    for name, command in all_commands().items():
        if command[0] != "flower-superlink" or name.startswith(INSECURE.name):
            continue
        if "--host" in command:
            assert value_of(command, "--host") == "127.0.0.1", name
    services = compose_services(COMPOSE)
    proxy = services["proxy"]
    assert proxy["network_mode"] == "service:aggregator"
    assert proxy["environment"]["FEDCARE_CONTROL_HOST"] == "127.0.0.1"
    assert services["aggregator"]["ports"] == ["9092:9092"]  # Fleet only, via proxy
    for name in ("register", "operator"):  # the Control API's only callers
        assert services[name]["network_mode"] == "service:aggregator", name
    k8s = {d["metadata"]["name"]: d for d in load_yaml(K8S / "service.yaml")}
    assert [p["port"] for p in k8s["fedcare-aggregator"]["spec"]["ports"]] == [9092]
    assert k8s["fedcare-aggregator-control"]["spec"]["type"] == "ClusterIP"
    (policy,) = load_yaml(K8S / "networkpolicy.yaml")
    rules = {r["ports"][0]["port"]: r for r in policy["spec"]["ingress"]}
    assert "from" not in rules[9092] and rules[9093]["from"], rules


def test_generated_proxy_config(tmp_path: Path) -> None:
    """The provisioned nginx.conf.in routes /v1/fleet/ on the hospitals' port and
    /v1/control/ on the operator's, refuses the rest, and nginx accepts it."""
    consortium = load_consortium_file(DEPLOY / "compose" / "consortium.toml")
    text = bundle.proxy_config(consortium)
    servers = re.findall(r"listen @(\w+)_HOST@:(\d+) ssl;\n(.*?)\n  }", text, re.S)
    routes = {
        (who, int(port)): re.findall(r"location (\S+) \{\n\s+(\w+)", body)
        for who, port, body in servers
    }
    agg = consortium.aggregator
    assert routes == {
        ("FLEET", agg.port): [("/v1/fleet/", "proxy_pass"), ("/", "return")],
        ("CONTROL", agg.control_port): [
            ("/v1/control/", "proxy_pass"),
            ("/", "return"),
        ],
    }
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx is not installed (deploy/system-deps.sh installs it)")
    from server.provision import crypto

    key = crypto.new_key()
    cert = crypto.issue_ca(key, "t")
    here = tmp_path / "operator"
    here.mkdir()
    crypto.write_private_key(here / "superlink.key", key)
    for name in ("superlink.crt", "ca.crt"):
        (here / name).write_bytes(crypto.pem(cert))
    filled = (
        text.replace("@HERE@", str(here))
        .replace("@STATE@", str(tmp_path))
        .replace("@FLEET_HOST@", "127.0.0.1")
        .replace("@CONTROL_HOST@", "127.0.0.1")
        .replace("@SUPERLINK@", "127.0.0.1:9")
    )
    (tmp_path / "nginx.conf").write_text(filled)
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_hospitals_run_only_approved_bundles() -> None:
    """Every SuperNode runs in process isolation beside fedcare's own runner on
    its loopback Runtime API, with an approved-apps list in its node config."""
    for name, command in all_commands().items():
        if command[0] != "flower-supernode":
            continue
        assert value_of(command, "--isolation") == "process", name
        if "--host" in command:
            assert value_of(command, "--host") == "127.0.0.1", name
        node = _parse_node_config(value_of(command, "--node-config"))
        assert "approved-apps" in node, f"{name}: no approved-apps in node config"
    for path in (COMPOSE, INSECURE):
        services = compose_services(path)
        for name, svc in services.items():
            if svc.get("command", [""])[0] != "flower-supernode":
                continue
            port = value_of(svc["command"], "--port")
            runner = compose_services(COMPOSE)[f"{name}-runner"]
            assert runner["network_mode"] == f"service:{name}", name
            assert runner["command"][0] == "fedcare-superexec", name
            assert value_of(runner["command"], "--runtime-api-address") == (
                f"127.0.0.1:{port}"
            ), name
            mounts = {v.split(":")[-2] if v.endswith(":ro") else v.split(":")[-1]
                      for v in runner["volumes"]}  # fmt: skip
            assert {"/key", "/data", "/ledger"} <= mounts, name
    provisioned = bundle.start_supernode(
        load_consortium_file(DEPLOY / "compose" / "consortium.toml"), "hospital_01"
    )
    for text in (provisioned, (DEPLOY / "docker" / "start-supernode.sh").read_text()):
        assert re.search(
            r"^fedcare-superexec --runtime-api-address \"127\.0\.0\.1:\$PORT\"",
            text,
            flags=re.MULTILINE,
        ), text
        assert '--port "$PORT"' in text


def test_compose_consortium_of_three_hospitals() -> None:
    services = compose_services(COMPOSE)
    hospitals = {
        n: s
        for n, s in services.items()
        if s.get("command", [""])[0] == "flower-supernode"
    }
    assert len(hospitals) == 3
    ports = [value_of(s["command"], "--port") for s in hospitals.values()]
    assert len(set(ports)) == 3, f"each SuperNode needs its own --port: {ports}"
    declared = set(load_yaml(COMPOSE)[0]["volumes"])
    for name, svc in hospitals.items():
        mounts = {
            v.split(":")[-2] if v.endswith(":ro") else v.split(":")[-1]: v
            for v in svc["volumes"]
        }
        assert {"/bundle", "/key", "/data", "/ledger"} <= set(mounts), name
        assert mounts["/bundle"].endswith(":ro") and mounts["/data"].endswith(":ro")
        # the node key comes from the hospital's own folder, not the bundle
        assert mounts["/key"].endswith(":ro") and "FEDCARE_KEYS" in mounts["/key"]
        assert mounts["/ledger"].split(":")[0] in declared, f"{name}: ledger volume"
        assert "healthcheck" in svc and "register" in svc["depends_on"], name
    assert "healthcheck" in services["aggregator"]


def _node_configs() -> dict[str, str]:
    return {
        name: value_of(cmd, "--node-config")
        for name, cmd in all_commands().items()
        if "--node-config" in cmd
    }


def _parse_node_config(text: str) -> dict[str, Any]:
    """A --node-config value, with the start scripts' shell variables filled in."""
    text = (
        text.replace("$FEDCARE_HOSPITAL_ID", "h")
        .replace("${", "")
        .replace(":-", "_DEFAULT_")
        .replace("}", "")
    )
    return parse_config_args([re.sub(r"=FEDCARE_\w+_DEFAULT_", "=", text)])


def test_node_config_keys_are_nodesettings_keys() -> None:
    known = {f.name.replace("_", "-") for f in dataclasses.fields(NodeSettings)}
    configs = _node_configs()
    assert len(configs) >= 7  # 3 compose + 3 overlay + start-supernode.sh (+ runbook)
    for name, text in configs.items():
        parsed = _parse_node_config(text)
        assert set(parsed) <= known, f"{name}: unknown keys {set(parsed) - known}"
        settings = NodeSettings.from_node_config(parsed)
        if not name.startswith("RUNBOOK.md"):
            assert str(settings.data_path) == "/data", name
            assert str(settings.ledger_path).startswith("/ledger/"), name


def test_same_flags_as_the_provisioned_start_scripts() -> None:
    consortium = load_consortium_file(DEPLOY / "compose" / "consortium.toml")
    assert {"aggregator", "127.0.0.1"} <= set(consortium.aggregator.hosts)
    expected = {
        "flower-superlink": set(
            flags_of(_command_of(bundle.start_superlink(consortium)))
        ),
        "flower-supernode": set(
            flags_of(
                _command_of(
                    bundle.start_supernode(consortium, consortium.hospitals[0].id)
                )
            )
        ),
    }
    services = compose_services(COMPOSE)
    for name in ("aggregator", "hospital-01", "hospital-02", "hospital-03"):
        command = services[name]["command"]
        missing = expected[command[0]] - set(flags_of(command))
        assert not missing, f"{name} lacks the start script's {missing}"
        if command[0] == "flower-supernode":
            hid = parse_config_args([value_of(command, "--node-config")])["hospital-id"]
            assert consortium.hospital(hid) is not None, f"{name}: unknown {hid}"


def _command_of(script: str) -> list[str]:
    text = script.replace("\\\n", " ")
    return shlex.split(re.search(r"^exec (.*)$", text, flags=re.MULTILINE).group(1))


def test_build_contexts_and_dockerfiles_exist() -> None:
    for path in (COMPOSE, INSECURE):
        for name, svc in compose_services(path).items():
            build = svc.get("build")
            if not build:
                continue
            context = (path.parent / build["context"]).resolve()
            assert context == ROOT, f"{name}: context {context}"
            assert (context / build["dockerfile"]).is_file(), name
    for name, svc in compose_services(COMPOSE).items():
        if "build" not in svc:  # the register job reuses a built image
            images = {
                s.get("image")
                for s in compose_services(COMPOSE).values()
                if "build" in s
            }
            assert svc["image"] in images, name


def _dockerignore_keeps(source: str) -> bool:
    keep = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
        if pattern == "*" or source == pattern or source.startswith(pattern + "/"):
            keep = negate
    return keep


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copy_sources_exist(path: Path) -> None:
    text = path.read_text().replace("\\\n", " ")
    copies = re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.MULTILINE)
    assert copies
    for line in copies:
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), f"{path.name}: COPY {source} missing"
            assert _dockerignore_keeps(source), f".dockerignore drops {source}"
    cuda = path.name == "hospital-cuda.Dockerfile"
    assert ("download.pytorch.org/whl/cpu" in text) != cuda
    if cuda:
        assert re.search(r"^FROM nvidia/cuda:\S+", text, flags=re.MULTILINE)
    assert re.search(r"TORCH_VERSION=2\.(\d+)\.\d+", text)
    minor = int(re.search(r"TORCH_VERSION=2\.(\d+)", text).group(1))
    assert 6 <= minor <= 14, "torch outside fedcare's range torch>=2.6,<=2.14.1"


def test_kustomization_resources_exist_and_secret_is_a_template() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")[0]
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    assert "secret.template.yaml" not in kustomization["resources"]
    (secret,) = load_yaml(K8S / "secret.template.yaml")
    assert all(v.startswith("REPLACE") for v in secret["stringData"].values())
    deployment = load_yaml(K8S / "deployment.yaml")[0]
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == secret["metadata"]["name"]
    claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
    assert load_yaml(K8S / "pvc.yaml")[0]["metadata"]["name"] == claim
    assert deployment["spec"]["replicas"] == 1


def _repository_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return [ROOT / p for p in listed if p and (ROOT / p).is_file()]


def test_no_private_key_material_in_the_repository() -> None:
    marker = re.compile(rb"-----BEGIN [A-Z ]*" + rb"PRIVATE KEY-----")
    offenders = [
        str(p.relative_to(ROOT))
        for p in _repository_files()
        if p.suffix in {".key", ".pem", ".p12"} or marker.search(p.read_bytes())
    ]
    assert not offenders, f"private key material in {offenders}"
