"""Bounded classification: a long text is cut before tokenizing, and the cut never changes the
tokens the model sees (so never the decision) unless the text is built to need more than
`max_chars` characters for its first 512 tokens."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from classifier.local import FIRST_CUT_CHARS, LocalClassifier
from classifier.settings import ClassifierSettings
from classifier.synthetic import corpus

MAX_CHARS = 131_072
PROSE = " ".join(corpus(4000))  # about 470,000 characters
RNG = random.Random(7)
UNKNOWN_CJK = "".join(chr(RNG.randint(0x4E00, 0x9FFF)) for _ in range(100_000))
EMOJI = "".join(chr(RNG.randint(0x1F600, 0x1F64F)) for _ in range(30_000))

LONG_TEXTS = {
    "prose": PROSE[:200_000],
    "spaces-first": " " * 100_000 + PROSE[:50_000],
    "spaces-last": PROSE[:20_000] + " " * 100_000,
    "spaces-between-words": "    \t  ".join(PROSE[:40_000].split()),
    "newlines-first": "\n" * 50_000 + PROSE[:30_000],
    "known-cjk-without-spaces": "请问如何写一封辞职信你好谢谢数学问题代码" * 5000,
    "unknown-cjk": UNKNOWN_CJK,  # the tiny vocabulary folds it into few tokens: read whole
    "emoji-then-prose": EMOJI + PROSE[:20_000],
    "one-long-word": "a" * 120_000,
    "combining-marks": ("e\u0301" * 9000 + " ") * 4,
    "cut-at-the-margin": "word " * (FIRST_CUT_CHARS // 5) + "x" * 60_000,
}


@pytest.fixture(scope="module")
def classifier(checkpoint_factory: Callable[[int | None], Path]) -> Iterator[LocalClassifier]:
    """A random head, so scores depend on every token."""
    settings = ClassifierSettings(model=str(checkpoint_factory(None)), cache_size=0)
    loaded = LocalClassifier.load(settings)
    yield loaded
    asyncio.run(loaded.aclose())


def uncut_ids(classifier: LocalClassifier, text: str) -> list[int]:
    ids: list[int] = classifier._tokenizer(text, truncation=True, max_length=512)["input_ids"]
    return ids


def uncut_probs(classifier: LocalClassifier, text: str) -> np.ndarray:
    encoded = classifier._tokenizer([text], truncation=True, max_length=512, return_tensors="np")
    logits = classifier.runner.logits(encoded["input_ids"], encoded["attention_mask"])
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(LONG_TEXTS))
def test_cut_texts_give_the_tokens_and_scores_of_the_whole_text(
    classifier: LocalClassifier, name: str
) -> None:
    text = LONG_TEXTS[name]
    assert len(text) > FIRST_CUT_CHARS
    cut = classifier.bound(text)
    assert text.startswith(cut)
    assert uncut_ids(classifier, cut) == uncut_ids(classifier, text)
    [scores] = classifier.predict([text])
    np.testing.assert_allclose(scores.probs, uncut_probs(classifier, text)[0], rtol=1e-6)


def test_ordinary_long_text_is_cut_at_the_first_try(classifier: LocalClassifier) -> None:
    assert classifier.bound(PROSE) == PROSE[:FIRST_CUT_CHARS]
    short = PROSE[:FIRST_CUT_CHARS]
    assert classifier.bound(short) is short


async def test_a_15_mb_message_costs_one_normal_pass(classifier: LocalClassifier) -> None:
    message = PROSE * (15_000_000 // len(PROSE) + 1)
    assert len(message) > 15_000_000
    cut = classifier.bound(message)
    assert cut == message[:FIRST_CUT_CHARS]
    # The uncut reference: the message's first megabyte, whose prose gives the same first 512
    # tokens as the whole (tokenizing all 15 MB takes half a minute on this machine).
    assert uncut_ids(classifier, cut) == uncut_ids(classifier, message[:1_000_000])
    [scores] = await classifier.classify([message])
    np.testing.assert_allclose(scores.probs, uncut_probs(classifier, cut)[0], rtol=1e-6)


def test_past_max_chars_the_text_is_cut_there(classifier: LocalClassifier) -> None:
    """The documented limit: 200,000 unknown characters fold into fewer than 512 tokens, so
    nothing short of the whole text would prove a cut harmless; the cap wins."""
    text = UNKNOWN_CJK * 2
    assert classifier.bound(text) == text[:MAX_CHARS]
