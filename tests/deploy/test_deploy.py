"""The deployment files, checked offline: the Dockerfile is hadolint clean, every Kubernetes
manifest (each overlay rendered) is valid against the Kubernetes schemas, the compose file is
valid against the compose-spec schema, and every command, file and name they refer to exists."""

from __future__ import annotations

import functools
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from gateway.settings import load_settings
from gateway.shutdown import FLUSH_SECONDS
from tests.deploy.kustomize import Resource, build, containers

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["base", "overlays/cpu-classifier", "overlays/gpu-classifier"]
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]  # 1.30: the first with the preStop `sleep` action
OUR_IMAGE = "routellm-gateway"
BIN = Path(sys.executable).parent


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


def check_python_c(argv: list[str]) -> None:
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "<healthcheck>", "exec")


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of each Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


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
            check_python_c(json.loads(args.split(" CMD ", 1)[1]))
    instructions = {instruction: args for instruction, args in steps}
    assert instructions["FROM"].startswith("python:3.11-slim")
    assert instructions["USER"].split(":")[0] != "0"
    assert "6060" in instructions["EXPOSE"].split()
    assert "/cache" in instructions["VOLUME"]


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
                check_python_c(service["healthcheck"]["test"][1:])
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
