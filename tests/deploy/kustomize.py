"""Render a kustomization the way `kustomize build` does, for the features deploy/k8s/ uses:
`resources` (files and directories), `configMapGenerator` (`literals`, `files`, `behavior:
merge`), `images`, `labels` (metadata only) and `generatorOptions.disableNameSuffixHash`.

No kustomize binary comes from the registries these machines reach. A kustomization using any
other key fails the render, so a feature this does not model cannot be validated by mistake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]
SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "configMapGenerator",
    "generatorOptions",
    "images",
    "labels",
}


def build(directory: Path) -> list[Resource]:
    """The resources `kustomize build directory` prints, in order."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise ValueError(f"{directory}: kustomization keys this renderer does not model: {unknown}")
    if spec.get("generatorOptions", {}) not in ({}, {"disableNameSuffixHash": True}):
        raise ValueError(f"{directory}: only generatorOptions.disableNameSuffixHash is modelled")
    out: list[Resource] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        if path.is_dir():
            out += build(path)
        else:
            out += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for generator in spec.get("configMapGenerator", []):
        _generate(directory, generator, out)
    for image in spec.get("images", []):
        _set_image(image, out)
    for label in spec.get("labels", []):
        if set(label) != {"pairs"}:
            raise ValueError(f"{directory}: only metadata label pairs are modelled: {label}")
        for resource in out:
            resource["metadata"].setdefault("labels", {}).update(label["pairs"])
    return out


def _generate(directory: Path, generator: dict[str, Any], out: list[Resource]) -> None:
    data: dict[str, str] = {}
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    for name in generator.get("files", []):
        data[Path(name).name] = (directory / name).read_text()
    behavior = generator.get("behavior", "create")
    existing = [
        r for r in out if r["kind"] == "ConfigMap" and r["metadata"]["name"] == generator["name"]
    ]
    if behavior == "merge":
        if len(existing) != 1:
            raise ValueError(f"{directory}: merge into missing ConfigMap {generator['name']}")
        existing[0]["data"].update(data)
    elif behavior == "create" and not existing:
        metadata = {"name": generator["name"]}
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    else:
        raise ValueError(f"{directory}: configMapGenerator behavior {behavior} not modelled")


def _set_image(image: dict[str, str], out: list[Resource]) -> None:
    for container in containers(out):
        name, _, tag = container["image"].partition(":")
        if name == image["name"]:
            container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def containers(resources: list[Resource]) -> list[dict[str, Any]]:
    """Every container of every Deployment."""
    return [
        c
        for r in resources
        if r["kind"] == "Deployment"
        for c in r["spec"]["template"]["spec"]["containers"]
    ]
