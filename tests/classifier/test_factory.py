"""open_classifier and the `uvicorn --factory` path: settings decide local or remote."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from classifier import ClassifierSettings, open_classifier
from classifier.local import LocalClassifier
from classifier.remote import RemoteClassifier
from classifier.service import create_app


async def test_url_opens_a_remote_classifier() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=[]))
    settings = ClassifierSettings(url="http://127.0.0.1:9/predict", timeout=0.5)
    classifier = await open_classifier(settings, transport=transport)
    assert isinstance(classifier, RemoteClassifier)
    await classifier.aclose()


async def test_no_url_loads_locally(checkpoint: Path) -> None:
    classifier = await open_classifier(ClassifierSettings(model=str(checkpoint)))
    assert isinstance(classifier, LocalClassifier)
    [scores] = await classifier.classify(["hi"])
    assert scores.top[0] == "LABEL_2"
    await classifier.aclose()


def test_create_app_without_settings_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTELLM_BERT_MODEL", "/models/from-env")
    monkeypatch.setenv("ROUTELLM_CLASSIFIER_API_KEY", "sk-env")
    app = create_app()
    state = app.state.service
    assert (state.settings.model, state.service_settings.api_key) == ("/models/from-env", "sk-env")
