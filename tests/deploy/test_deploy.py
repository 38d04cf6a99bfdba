"""The deployment files, checked offline: the Dockerfile is hadolint clean, every Kubernetes
manifest (each overlay rendered) is valid against the Kubernetes schemas, the compose file is
valid against the compose-spec schema, and every command, file and name they refer to exists."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from gateway.drain import FLUSH_SECONDS
from gateway.settings.load import load_settings
from tests.deploy.kustomize import Resource, build, containers

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["base", "overlays/cpu-classifier", "overlays/gpu-classifier"]
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]  # 1.30: the first with the preStop `sleep` action
OUR_IMAGE = "routellm-gateway"
BIN = Path(sys.executable).parent
FIRST_START_SECONDS = 600
"""How long a first start may take: the model's download (~1.1 GB) and its ONNX export (~80 s)."""


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


@functools.cache
def help_text(script: str) -> str:
    """`--help` of one of our console scripts: which flags it takes."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert script in scripts, f"{script} is not a console script in pyproject.toml"
    module = scripts[script].split(".", 1)[0]
    result = run(sys.executable, "-m", module, "--help")
    assert result.returncode == 0, result.stderr
    return result.stdout


def check_command(argv: list[str]) -> None:
    """`argv` runs one of our console scripts with flags it knows."""
    text = help_text(argv[0])
    for flag in (a for a in argv[1:] if a.startswith("--")):
        assert flag in text, f"{argv[0]} has no {flag}"


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of each Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def image_env() -> dict[str, str]:
    """The Dockerfile's `ENV` variables."""
    pairs = [p for i, args in dockerfile() if i == "ENV" for p in args.split()]
    return dict(p.split("=", 1) for p in pairs)


def copied_into_image() -> dict[str, Path]:
    """Image path -> repository file, for each single-file `COPY` of the Dockerfile."""
    copies = [args.split() for i, args in dockerfile() if i == "COPY"]
    return {dest: ROOT / sources[0] for *sources, dest in copies if len(sources) == 1}


def healthcheck_script() -> ModuleType:
    """deploy/healthcheck.py, the image's HEALTHCHECK command, imported."""
    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "deploy" / "healthcheck.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_healthcheck(argv: list[str]) -> None:
    """`argv` is `python -c CODE` that compiles, or `python FILE` with a file the image has."""
    assert argv[0] == "python"
    if argv[1] == "-c":
        compile(argv[2], "<healthcheck>", "exec")
        return
    [path] = argv[1:]
    source = copied_into_image()[path]
    compile(source.read_text(), str(source), "exec")


def seconds(duration: str) -> float:
    """A Docker duration such as `600s` or `10m`."""
    match = re.fullmatch(r"(\d+)([sm])", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


# --- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_is_hadolint_clean() -> None:
    result = run(BIN / "hadolint", "--no-color", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_dockerfile_copies_and_runs_what_exists() -> None:
    steps = dockerfile()
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    for instruction, args in steps:
        if instruction == "COPY":
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert f"!{source.rstrip('/')}" in ignore or f"!{source}/" in ignore, source
        if instruction == "CMD":
            check_command(json.loads(args))
        if instruction == "HEALTHCHECK":
            check_healthcheck(json.loads(args.split(" CMD ", 1)[1]))
    instructions = {instruction: args for instruction, args in steps}
    assert instructions["FROM"].startswith("python:3.11-slim")
    assert instructions["USER"].split(":")[0] != "0"
    assert "6060" in instructions["EXPOSE"].split()
    assert {"/cache", "/data"} <= set(json.loads(instructions["VOLUME"]))


def test_dependencies_install_in_layers_no_source_feeds() -> None:
    """A source edit rebuilds only the package's layer, never torch's (~1.4 GB)."""
    steps = dockerfile()
    runs = [i for i, (instruction, _) in enumerate(steps) if instruction == "RUN"]
    deps = next(i for i in runs if "pip install -r" in steps[i][1])
    package = next(i for i in runs if "pip install" in steps[i][1] and " ." in steps[i][1])
    copied_before = [args.split()[:-1] for ins, args in steps[:deps] if ins == "COPY"]
    assert copied_before == [["pyproject.toml"]]
    assert "--no-deps" in steps[package][1].split()
    torch = next(i for i in runs if "pip install torch" in steps[i][1])
    assert torch < min(i for i, (ins, _) in enumerate(steps) if ins == "COPY")
    pinned = re.search(r"torch==\S+", steps[torch][1])
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert pinned
    assert pinned[0] in dependencies


def test_healthcheck_follows_the_port_served_and_covers_a_first_start() -> None:
    script = healthcheck_script()
    argv = ["python", "/usr/local/bin/routellm-gateway"]
    assert script.served_address([*argv, "--host", "0.0.0.0", "--port", "7000"]) == (
        "127.0.0.1",
        7000,
    )
    assert script.served_address([*argv, "--port=7001"]) == ("127.0.0.1", 7001)
    assert script.served_address(argv) == ("127.0.0.1", 6060)
    assert script.served_address(["routellm-classifier"]) == ("127.0.0.1", 8800)
    assert script.served_address([*argv, "calibrate", "--prompts", "p.jsonl"]) is None
    assert script.served_address(["sh", "-c", "sleep 1"]) is None
    # Every command the image is run with here is probed on its own port.
    commands = [json.loads(a) for i, a in dockerfile() if i == "CMD"]
    commands += [s["command"] for s in compose()["services"].values() if "build" in s]
    for overlay in OVERLAYS:
        ours = containers(rendered(overlay))
        commands += [c["args"] for c in ours if c["image"].startswith(f"{OUR_IMAGE}:")]
    for command in commands:
        port = int(command[command.index("--port") + 1])
        assert script.served_address(command) == ("127.0.0.1", port), command
    healthcheck = next(a for i, a in dockerfile() if i == "HEALTHCHECK")
    start = re.search(r"--start-period=(\S+)", healthcheck)
    assert start
    assert seconds(start[1]) >= FIRST_START_SECONDS


def test_state_lives_in_a_writable_volume() -> None:
    """The ledger (ROUTELLM_LEDGER) is a file in the image's /data volume, the gateway owns
    it, and compose and Kubernetes mount a writable volume there."""
    env = image_env()
    ledger = Path(env["ROUTELLM_LEDGER"])
    assert ledger.parent == Path("/data")
    settings = load_settings({"OPENAI_API_KEY": "sk-test", **env})
    assert settings.ledger.enabled
    assert settings.ledger.location == str(ledger)
    chown = next(a for i, a in dockerfile() if i == "RUN" and "chown" in a)
    assert "/data" in chown.split("chown", 1)[1]
    gateway = compose()["services"]["gateway"]
    assert Path(gateway["environment"]["ROUTELLM_LEDGER"]).parent == ledger.parent
    assert any(v.split(":")[1] == "/data" for v in gateway["volumes"])
    for overlay in OVERLAYS:
        resources = rendered(overlay)
        config = by_kind(resources, "ConfigMap")["routellm-gateway-env"]["data"]
        assert config["ROUTELLM_LEDGER"] == str(ledger)
        pod = by_kind(resources, "Deployment")["routellm-gateway"]["spec"]["template"]["spec"]
        [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/data"]
        assert not mount.get("readOnly")
        [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert "emptyDir" in volume or "persistentVolumeClaim" in volume


# --- Kubernetes -------------------------------------------------------------------------------


@functools.cache
def rendered(overlay: str) -> list[Resource]:
    return build(K8S / overlay)


def by_kind(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_is_valid_kubernetes(overlay: str, version: str) -> None:
    resources = rendered(overlay)
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    for resource in [*resources, secret]:
        kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS[1:])
def test_overlay_wiring_refers_to_what_exists(overlay: str) -> None:
    resources = rendered(overlay)
    config_maps = by_kind(resources, "ConfigMap")
    deployments = by_kind(resources, "Deployment")
    services = by_kind(resources, "Service")
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    secrets = {secret["metadata"]["name"]: secret}

    for deployment in deployments.values():
        pod = deployment["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]["stringData"]
            ports = {p["name"] for p in container.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe in container:
                    assert container[probe]["httpGet"]["port"] in ports
    for service in services.values():
        selector = service["spec"]["selector"]
        assert any(
            selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            for d in deployments.values()
        ), service["metadata"]["name"]
    for deployment in deployments.values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            probe = container.get("startupProbe")
            if probe and container["image"].startswith(f"{OUR_IMAGE}:"):
                window = probe["periodSeconds"] * probe["failureThreshold"]
                assert window >= FIRST_START_SECONDS, container["name"]
    for hpa in by_kind(resources, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments

    # The gateway reaches the overlay's classifier through one of its Services.
    env = config_maps["routellm-gateway-env"]["data"]
    url = urlsplit(env["ROUTELLM_BERT_URL"])
    assert url.hostname in services
    assert (url.port or 80) in {p["port"] for p in services[url.hostname]["spec"]["ports"]}


def test_gateway_outlives_its_drain_and_serves_its_config() -> None:
    resources = rendered("overlays/cpu-classifier")
    gateway = by_kind(resources, "Deployment")["routellm-gateway"]["spec"]["template"]["spec"]
    env = by_kind(resources, "ConfigMap")["routellm-gateway-env"]["data"]
    container = gateway["containers"][0]
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = float(env["ROUTELLM_SHUTDOWN_GRACE"])
    assert gateway["terminationGracePeriodSeconds"] > pause + grace + FLUSH_SECONDS
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"  # 503 while draining
    assert container["resources"]["requests"]["cpu"]  # the HPA scales on CPU requests
    # The mounted YAML config is one the gateway accepts.
    config = by_kind(resources, "ConfigMap")["routellm-gateway-config"]["data"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert env["ROUTELLM_CONFIG"] == f"{mount['mountPath']}/gateway.yaml"
    path = ROOT / "deploy" / "k8s" / "base" / "gateway.yaml"
    assert config["gateway.yaml"] == path.read_text()
    settings = load_settings({"OPENAI_API_KEY": "sk-test", **env}, str(path))
    assert settings.shutdown_grace == grace


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_run_our_commands(overlay: str) -> None:
    ours = [c for c in containers(rendered(overlay)) if c["image"].startswith(f"{OUR_IMAGE}:")]
    assert ours
    for container in ours:
        check_command(container["args"])


# --- Compose ----------------------------------------------------------------------------------

COMPOSE = ROOT / "deploy" / "compose.yaml"


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def test_compose_is_valid_against_the_compose_spec() -> None:
    result = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_refers_to_what_exists() -> None:
    doc = compose()
    services = doc["services"]
    assert {"gateway", "classifier", "redis", "prometheus", "grafana"} <= services.keys()
    for name, service in services.items():
        if "build" in service:
            context = COMPOSE.parent / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file()
            check_command(service["command"])
            if "healthcheck" in service:
                check_healthcheck(service["healthcheck"]["test"][1:])
                assert seconds(service["healthcheck"]["start_period"]) >= FIRST_START_SECONDS
            # The Dockerfile's torch index is passed: unset, compose stops instead of pulling
            # the CUDA build.
            args = service["build"]["args"]
            declared = {a.split("=")[0] for i, a in dockerfile() if i == "ARG"}
            assert args.keys() <= declared
            assert args["PIP_EXTRA_INDEX_URL"].startswith("${PIP_EXTRA_INDEX_URL?")
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source}"
            else:
                assert source in doc["volumes"], f"{name}: {source}"
    gateway = services["gateway"]["environment"]
    url = urlsplit(gateway["ROUTELLM_BERT_URL"])
    assert url.hostname == "classifier"
    assert f"--port {url.port}" in shlex.join(services["classifier"]["command"])
    assert "${OPENAI_API_KEY" in gateway["OPENAI_API_KEY"]  # from the environment, not a file
    assert services["gateway"]["stop_grace_period"] == "40s"
    grace = float(gateway["ROUTELLM_SHUTDOWN_GRACE"])
    assert grace + FLUSH_SECONDS < 40


def test_prometheus_scrapes_the_gateway_and_grafana_reads_prometheus() -> None:
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    job = prometheus["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["gateway:6060"]
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    dashboard = json.loads((ROOT / "config" / "grafana-dashboard.json").read_text())
    assert dashboard["panels"]
    provider = yaml.safe_load((provisioning / "dashboards" / "routellm.yaml").read_text())
    mounted = [v for v in compose()["services"]["grafana"]["volumes"] if "dashboard" in v]
    assert mounted[0].split(":")[1].startswith(provider["providers"][0]["options"]["path"])
