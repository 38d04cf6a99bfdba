"""`train --models`, `evaluate --models` and `calibrate --router` through the real CLI, on planted
data (maths prompts: `mathy` is right, law prompts: `lawyer`), with the packaged MiniLM encoder:
both heads route each topic to the model good at it, the directory opens as the gateway opens
it, a second train encodes nothing, and the figures come back in their documented shape."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest

from gateway.cli import main
from routers.encoders import LocalEncoder
from routers.manifest import read_manifest
from routers.registry import open_router
from tests.routers.planted import LAW, MATHS, MODELS, PRICES, labels

UNSEEN_MATHS = ["What is the second derivative of x^3 - 2x?", "Integrate 1/(1+x^2) from 0 to 1"]
UNSEEN_LAW = ["Can a landlord be sued for negligence?", "What makes a contract void?"]


@pytest.fixture(autouse=True)
def own_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where no --embedding-cache is given (calibrate), the user's cache directory: here a
    temporary one (platformdirs reads XDG_CACHE_HOME)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted data as a CSV (the `mmlu_pro_29.csv` shape), with its prices."""
    folder = tmp_path_factory.mktemp("planted")
    with (folder / "data.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "category", *MODELS])
        for text, topic, row in zip(
            MATHS + LAW, ["maths"] * len(MATHS) + ["law"] * len(LAW), labels(), strict=True
        ):
            writer.writerow([text, topic, *("" if math.isnan(v) else v for v in row)])
    with (folder / "prices.csv").open("w", encoding="utf-8") as handle:
        handle.write("model,input_usd_per_mtok,output_usd_per_mtok\n")
        handle.writelines(f"{m},{i},{o}\n" for m, (i, o) in PRICES.items())
    return folder


def train(planted: Path, out: Path, cache: Path, *more: str) -> int:
    return main(
        [
            "train",
            "--data",
            str(planted / "data.csv"),
            "--models",
            ",".join(MODELS),
            "--out",
            str(out),
            "--embedding-cache",
            str(cache),
            "--holdout",
            "0.2",
            "--no-progress",
            *more,
        ]
    )


def trained_knn(
    planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, Path]:
    """A kNN router (k = 8) trained on the planted data, and its embedding cache; what the
    training printed is read away."""
    out, cache = tmp_path / "router", tmp_path / "cache"
    assert train(planted, out, cache, "--head", "knn", "--k", "8") == 0
    capsys.readouterr()
    return out, cache


@pytest.mark.parametrize("head", ["knn", "linear"])
async def test_train_writes_a_router_that_routes_each_topic_to_its_model(
    planted: Path, tmp_path: Path, head: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "router"
    # 58 training prompts: the linear head's own parts need less shrinkage than its default.
    strengths = ["--c-own", "1"] if head == "linear" else []
    assert train(planted, out, tmp_path / "cache", "--head", head, "--k", "8", *strengths) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["held_out"]["complete"] > 0
    manifest = read_manifest(out)
    assert (manifest.kind, manifest.head, manifest.models) == ("embedding", head, MODELS)
    assert manifest.card["split"] == {"by": "random", "holdout": 0.2, "seed": 0}
    settings = {"kind": "knn", "k": 7, "prior_weight": pytest.approx(7 * 2 / 3)}  # 7 = ⌊√58⌋
    if head == "linear":
        settings = {"kind": "linear", "c_shared": 4.0, "c_own": 1.0}
    assert manifest.card["head"] == settings
    assert "Held-out figures" in (out / "README.md").read_text(encoding="utf-8")
    router = await open_router(str(out))
    try:
        maths = await router.classify(UNSEEN_MATHS)
        law = await router.classify(UNSEEN_LAW)
    finally:
        await router.aclose()
    for scores in maths:
        assert scores.get("mathy") > scores.get("lawyer") + 0.2, scores
    for scores in law:
        assert scores.get("lawyer") > scores.get("mathy") + 0.2, scores


def test_a_second_train_on_the_same_data_encodes_nothing(
    planted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    assert train(planted, tmp_path / "first", cache) == 0
    shards = sorted(cache.rglob("*.npz"))
    assert shards

    def no_encoder(name: str) -> object:
        raise AssertionError(f"{name} was loaded although every prompt is cached")

    monkeypatch.setattr(LocalEncoder, "load", no_encoder)
    assert train(planted, tmp_path / "second", cache, "--head", "knn") == 0
    assert sorted(cache.rglob("*.npz")) == shards


def test_evaluate_and_calibrate_a_trained_router(
    planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, cache = tmp_path / "router", tmp_path / "cache"
    assert train(planted, out, cache) == 0
    capsys.readouterr()
    common = ["--data", str(planted / "data.csv"), "--models", ",".join(MODELS)]
    common += ["--prices", str(planted / "prices.csv"), "--holdout", "0.2"]  # train's held out
    png = tmp_path / "curve.png"
    status = main(
        [
            "evaluate",
            *common,
            "--checkpoint",
            str(out),
            "--embedding-cache",
            str(cache),
            "--no-progress",
            "--json",
            "--plot",
            str(png),
        ]
    )
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert report["best_single"]["name"] == "generalist"
    (router,) = report["routers"]
    assert router["name"] == str(out)
    # Every prompt has a model that is right at 1.0 for a tenth of generalist's price.
    assert router["best_accuracy"] == pytest.approx(1.0)
    assert router["cost_share_to_match"] < 0.5
    assert router["aiq_vs_hull"] > 0
    assert router["aiq_ci"][0] <= router["aiq"] <= router["aiq_ci"][1]
    costs = [point["cost"] for point in router["curve"]]
    assert costs == sorted(costs, reverse=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    status = main(["calibrate", "--router", str(out), *common, "--cost-share", "0.3"])
    assert status == 0
    printed = capsys.readouterr()
    assert float(printed.out.strip()) >= 0
    share = re.search(r"([\d.]+)% of generalist's price, ([\d.]+)% of its quality", printed.err)
    assert share is not None, printed.err
    assert float(share.group(1)) <= 30.0
    assert float(share.group(2)) > 100.0  # the topic's own model beats the generalist's 0.7
    assert list((tmp_path / "xdg-cache" / "routellm-gateway" / "embeddings").rglob("*.npz"))


def test_two_models_also_get_apgr(
    planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, cache = trained_knn(planted, tmp_path, capsys)
    status = main(
        [
            "evaluate",
            "--data",
            str(planted / "data.csv"),
            "--models",
            "generalist,cheap",
            "--checkpoint",
            str(out),
            "--prices",
            str(planted / "prices.csv"),
            "--embedding-cache",
            str(cache),
            "--no-progress",
            "--json",
        ]
    )
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    (pair,) = report["two_models"]["routers"]
    assert 0.0 <= pair["apgr_ci"][0] <= pair["apgr"] <= pair["apgr_ci"][1]


def test_bad_input_is_one_line_with_the_fix(
    planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "train",
            "--data",
            str(planted / "data.csv"),
            "--models",
            "mathy,nobody",
            "--out",
            str(tmp_path / "r"),
            "--embedding-cache",
            str(tmp_path / "c"),
        ]
    )
    assert status == 2
    assert "no quality for nobody" in capsys.readouterr().err
    status = main(
        [
            "calibrate",
            "--router",
            str(tmp_path / "missing"),
            "--data",
            str(planted / "data.csv"),
            "--quality-share",
            "0.9",
        ]
    )
    assert status == 2
    assert "is not a router directory" in capsys.readouterr().err


def test_prices_can_come_from_the_gateway_config(
    planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, cache = trained_knn(planted, tmp_path, capsys)
    config = tmp_path / "gateway.yaml"
    lines = ["upstreams:", "  local: {base_url: 'http://127.0.0.1:9/v1'}", "models:"]
    lines += [
        f"  {m}: {{upstream: local, price: {{input: {i}, output: {o}}}}}"
        for m, (i, o) in PRICES.items()
    ]
    lines += ["routing: {strong: generalist, weak: cheap, fallback: cheap}"]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    common = ["--data", str(planted / "data.csv"), "--models", ",".join(MODELS)]
    status = main(
        [
            "evaluate",
            *common,
            "--checkpoint",
            str(out),
            "--config",
            str(config),
            "--json",
            "--embedding-cache",
            str(cache),
            "--no-progress",
        ]
    )
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    costs = {m["name"]: m["cost"] for m in report["models"]}
    assert costs["generalist"] == pytest.approx(0.75 * 5.0 + 0.25 * 15.0)
    assert costs["cheap"] == pytest.approx(0.75 * 0.1 + 0.25 * 0.2)
    status = main(["evaluate", *common, "--checkpoint", str(out), "--embedding-cache", str(cache)])
    assert status == 2
    assert "no price for mathy, lawyer, generalist, cheap" in capsys.readouterr().err
