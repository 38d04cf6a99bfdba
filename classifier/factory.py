"""Open the classifier the settings ask for: remote when `url` is set, else in-process."""

from __future__ import annotations

import asyncio

import httpx

from classifier.base import Classifier
from classifier.settings import ClassifierSettings


async def open_classifier(
    settings: ClassifierSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> Classifier:
    """A `RemoteClassifier` for `settings.url`, or a `LocalClassifier` loaded off the event loop.

    Raises `ClassifierUnavailable` (one line with the fix) when the local model cannot load.
    `transport` only applies to the remote client (tests pass `httpx.MockTransport`)."""
    if settings.url:
        from classifier.remote import RemoteClassifier

        return RemoteClassifier(
            settings.url, token=settings.token, timeout=settings.timeout, transport=transport
        )
    from classifier.local import LocalClassifier

    return await asyncio.to_thread(LocalClassifier.load, settings)
