"""Parity with RouteLLM itself: RouteLLM 0.2.0's `MFModel` and `calculate_strong_win_rate`, run
in their own virtual environment, against `routers.mf` on the same checkpoint (saved by
RouteLLM's own `save_pretrained`) and the same fake embeddings API on 127.0.0.1.

The environment is built once (minutes: torch is the CPU wheel) in
`$ROUTELLM_PARITY_VENV`, by default `<tmp>/routellm-gateway-tests/routellm-0.2.0`, and reused
while its stamp names the same packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from routers.encoders import EmbeddingsApi
from routers.mf import MFOptions, open_mf
from tests.routers.fake_embeddings import FakeEmbeddings
from tests.servers import serve

PACKAGES = ["routellm==0.2.0", "torch==2.13.0"]
SCRIPT = Path(__file__).with_name("routellm_mf.py")
PROMPTS = [
    *(f"Write a {kind} about {topic}" for kind in ("poem", "proof") for topic in "abcdef"),
    *(f"What is {a} times {b}?" for a in (7, 12, 31) for b in (3, 19)),
    "Explain the difference between TCP and UDP",
    "Translate 'good morning' into French",
    "Prove that there are infinitely many primes",
    "Summarise the plot of Hamlet in two sentences",
    "hi",
    "Write a Python function that reverses a linked list, with tests",
]


@pytest.fixture(scope="session")
def routellm_python() -> Path:
    """RouteLLM 0.2.0's interpreter, in a virtual environment of its own."""
    default = Path(tempfile.gettempdir()) / "routellm-gateway-tests" / "routellm-0.2.0"
    venv = Path(os.environ.get("ROUTELLM_PARITY_VENV", default))
    python, stamp = venv / "bin" / "python", venv / ".installed"
    wanted = " ".join(PACKAGES)
    if not (stamp.is_file() and stamp.read_text() == wanted):
        venv.parent.mkdir(parents=True, exist_ok=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], check=True)
        stamp.write_text(wanted)
    return python


@pytest.fixture
def fake() -> Iterator[tuple[FakeEmbeddings, str]]:
    embeddings = FakeEmbeddings()
    with serve(embeddings) as url:
        yield embeddings, f"{url}/v1"


def run_routellm(python: Path, job: dict[str, Any], base_url: str) -> dict[str, Any]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "OPENAI_API_KEY": "unused-parity-key",
        "OPENAI_BASE_URL": base_url,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    done = subprocess.run(
        [str(python), str(SCRIPT)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # RouteLLM prints its progress on stdout too: the answer is the last line.
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


@pytest.mark.timeout(900)  # the first run builds RouteLLM's environment
async def test_win_rates_and_decisions_match_routellm(
    routellm_python: Path, fake: tuple[FakeEmbeddings, str], tmp_path: Path
) -> None:
    embeddings, url = fake
    checkpoint = tmp_path / "mf-routellm"
    job = {"do": "save", "dir": str(checkpoint), "seed": 7, "scale": 24.0}
    run_routellm(routellm_python, job, url)
    assert (checkpoint / "model.safetensors").is_file()

    router = await open_mf(str(checkpoint), MFOptions(embeddings=EmbeddingsApi(url)))
    try:
        ours = np.array([s.get("LABEL_0") for s in await router.classify(PROMPTS)])
    finally:
        await router.aclose()
    # Thresholds between neighbouring rates at the quartiles: each splits the prompts.
    ranked = np.sort(ours)
    thresholds = [float((ranked[i] + ranked[i + 1]) / 2) for i in (5, 11, 17)]

    theirs = run_routellm(
        routellm_python,
        {"do": "score", "dir": str(checkpoint), "prompts": PROMPTS, "thresholds": thresholds},
        url,
    )

    assert len(PROMPTS) >= 20
    np.testing.assert_allclose(ours, theirs["rates"], rtol=0, atol=1e-6)
    assert ours.std() > 0.1  # a real spread of win rates, not all near 0.5
    for t, routes in zip(thresholds, theirs["routes"], strict=True):
        assert routes == ["strong" if r >= t else "weak" for r in ours]
        assert 0 < routes.count("strong") < len(PROMPTS)
    assert set(embeddings.models) == {"text-embedding-3-small"}
