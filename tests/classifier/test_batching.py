"""MicroBatcher: shared forward passes, per-caller results, cache, cancellation, errors."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from classifier.base import ClassifierError, ClassifierUnavailable, Scores
from classifier.batching import MicroBatcher, padding_waste, plan_passes
from classifier.local import LocalClassifier
from classifier.settings import ClassifierSettings
from classifier.synthetic import corpus
from tests.classifier.conftest import fake_scores


@pytest.fixture
async def random_head(
    checkpoint_factory: Callable[[int | None], Path],
) -> AsyncIterator[LocalClassifier]:
    """A random-head checkpoint (scores differ per text) with a generous batching window."""
    settings = ClassifierSettings(
        model=str(checkpoint_factory(None)), max_wait_ms=50, batch_size=16, cache_size=64
    )
    classifier = LocalClassifier.load(settings)
    yield classifier
    await classifier.aclose()


async def test_concurrent_callers_share_forward_passes(random_head: LocalClassifier) -> None:
    texts = [t for t in corpus(200, seed=7) if 60 <= len(t) <= 110][:12]
    assert len(texts) == 12
    expected = [random_head.predict([t])[0] for t in texts]
    stats = random_head.batcher.stats
    passes_before = stats.forward_passes

    results = await asyncio.gather(*(random_head.classify([t]) for t in texts))

    passes = stats.forward_passes - passes_before
    assert passes < len(texts)
    assert max(stats.batch_sizes) > 1
    for [got], want in zip(results, expected, strict=True):
        assert got.labels == want.labels
        assert got.probs == pytest.approx(want.probs, abs=1e-4)
    # the scores really differ per text, so a mix-up between callers would show
    assert len({round(r[0].probs[0], 6) for r in results}) > 1


async def test_cache_hits_are_identical_and_skip_the_model(random_head: LocalClassifier) -> None:
    [first] = await random_head.classify(["the cache test sentence"])
    stats = random_head.batcher.stats
    passes, hits = stats.forward_passes, stats.cache_hits
    [again] = await random_head.classify(["the cache test sentence"])
    assert again == first
    assert stats.forward_passes == passes
    assert stats.cache_hits == hits + 1


async def test_batch_preserves_order(random_head: LocalClassifier) -> None:
    texts = ["short", "a much longer sentence about matrices and integrals " * 3, "mid length"]
    got = await random_head.classify(texts)
    for g, t in zip(got, texts, strict=True):
        assert g.probs == pytest.approx(random_head.predict([t])[0].probs, abs=1e-4)


# --- with a fake predict: fast and fully controlled ---


class SlowPredict:
    """A blocking predict that records each batch and sleeps to let callers pile up."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.calls: list[list[str]] = []
        self.fail_next: Exception | None = None
        self.threads: set[str] = set()

    def __call__(self, texts: list[str]) -> list[Scores]:
        self.calls.append(list(texts))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        return [fake_scores(t) for t in texts]


@pytest.fixture
async def slow() -> AsyncIterator[tuple[MicroBatcher, SlowPredict]]:
    predict = SlowPredict()
    batcher = MicroBatcher(predict, batch_size=8, max_wait_ms=20, cache_size=16)
    yield batcher, predict
    await batcher.aclose()


async def test_identical_texts_in_flight_share_one_computation(
    slow: tuple[MicroBatcher, SlowPredict],
) -> None:
    batcher, predict = slow
    results = await asyncio.gather(*(batcher.submit(["same text"]) for _ in range(6)))
    assert all(r == [fake_scores("same text")] for r in results)
    assert sum(c.count("same text") for c in predict.calls) == 1
    assert batcher.stats.deduplicated + batcher.stats.cache_hits == 5


async def test_predict_runs_off_the_event_loop(slow: tuple[MicroBatcher, SlowPredict]) -> None:
    batcher, predict = slow
    predict.delay = 0.3
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await batcher.submit(["blocking for a while"])
    task.cancel()
    assert ticks >= 10  # the loop kept running while predict slept
    assert predict.threads == {"classifier-batcher"}


async def test_errors_reach_every_caller_of_the_batch(
    slow: tuple[MicroBatcher, SlowPredict],
) -> None:
    batcher, predict = slow
    predict.fail_next = RuntimeError("CUDA out of memory")
    results = await asyncio.gather(
        batcher.submit(["x1"]), batcher.submit(["x2"]), return_exceptions=True
    )
    assert all(isinstance(r, ClassifierError) for r in results)
    assert "CUDA out of memory" in str(results[0])
    assert batcher.stats.errors == 1
    assert await batcher.submit(["x3"]) == [fake_scores("x3")]  # the worker survived


async def test_cancelled_caller_does_not_break_the_worker(
    slow: tuple[MicroBatcher, SlowPredict],
) -> None:
    batcher, predict = slow
    predict.delay = 0.2
    doomed = asyncio.create_task(batcher.submit(["cancelled text"]))
    await asyncio.sleep(0.05)  # it is in the forward pass now
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    predict.delay = 0.01
    assert await batcher.submit(["after"]) == [fake_scores("after")]
    assert await batcher.submit(["cancelled text"]) == [fake_scores("cancelled text")]


async def test_batch_size_caps_a_forward_pass() -> None:
    predict = SlowPredict(delay=0.01)
    batcher = MicroBatcher(predict, batch_size=3, max_wait_ms=50, cache_size=0)
    try:
        await asyncio.gather(*(batcher.submit([f"text {i}"]) for i in range(7)))
        assert all(len(c) <= 3 for c in predict.calls)
        assert sum(len(c) for c in predict.calls) == 7
        assert batcher.stats.cache_hits == 0
    finally:
        await batcher.aclose()


async def test_cache_is_lru_bounded() -> None:
    predict = SlowPredict(delay=0)
    batcher = MicroBatcher(predict, batch_size=4, max_wait_ms=0, cache_size=2)
    try:
        for text in ["a", "b", "a", "c", "b"]:
            await batcher.submit([text])
        # "a" was refreshed before "c" evicted "b"; so b is computed twice, a once.
        flat = [t for call in predict.calls for t in call]
        assert flat.count("a") == 1
        assert flat.count("b") == 2
    finally:
        await batcher.aclose()


async def test_a_full_cache_holds_digests_not_texts() -> None:
    predict = SlowPredict(delay=0)
    batcher = MicroBatcher(predict, batch_size=4, max_wait_ms=0, cache_size=8)
    long_texts = [f"{i} " + "x" * 100_000 for i in range(8)]
    try:
        for text in long_texts:
            await batcher.submit([text])
        before = len(predict.calls)
        assert await batcher.submit(long_texts[:1]) == [fake_scores(long_texts[0])]
        assert len(predict.calls) == before  # answered from the cache
        held = sum(len(key) for key in batcher._cache)
    finally:
        await batcher.aclose()
    assert held == 8 * 16  # 16-byte digests, whatever the texts' length


async def test_closed_batcher_refuses() -> None:
    batcher = MicroBatcher(SlowPredict(delay=0))
    await batcher.aclose()
    await batcher.aclose()  # idempotent
    with pytest.raises(ClassifierUnavailable, match="shut down"):
        await batcher.submit(["x"])


# Token counts of 16 unique prompts at once, the mix bench/prompts.py draws (half 8-31 tokens,
# 30 % 32-127, 20 % 128-400): its first 64 prompts, 16 at a time.
MIXES = (
    [77, 239, 24, 49, 17, 12, 11, 27, 256, 100, 19, 87, 18, 232, 102, 93],
    [22, 24, 16, 159, 31, 18, 122, 40, 225, 26, 60, 15, 12, 357, 122, 191],
    [102, 18, 25, 14, 27, 102, 275, 22, 9, 261, 23, 40, 10, 194, 12, 36],
    [42, 30, 22, 380, 29, 28, 121, 19, 42, 18, 110, 187, 79, 215, 18, 346],
)
WASTE_BOUND = 0.05
"""The share of a mix's padded tokens that may be padding. The rule this replaced (sort, cut
where a text is over 1.4x its group's shortest and 16 tokens longer) padded 7.6 to 11.4 % of
these mixes."""


def plan(sizes: list[int]) -> list[list[int]]:
    return plan_passes(sizes, pass_cost=16, max_tokens=256)


@pytest.mark.parametrize("sizes", MIXES)
def test_the_passes_of_a_mixed_batch_waste_little_padding(sizes: list[int]) -> None:
    passes = plan(sizes)
    assert sorted(i for p in passes for i in p) == list(range(len(sizes)))  # each text once
    assert padding_waste(sizes, passes) < WASTE_BOUND
    assert all(len(p) == 1 or len(p) * max(sizes[i] for i in p) <= 256 for p in passes)
    assert len(passes) < len(sizes)  # and similar short texts still share passes


def test_the_plan_costs_least_under_its_model() -> None:
    sizes = [10, 12, 40, 41, 300]
    # together: 16 + 5 x 300; one by one: 5 x 16 + 403; the best: {10, 12}, {40, 41}, {300}
    assert plan(sizes) == [[0, 1], [2, 3], [4]]
    # a large per-pass cost makes joining the short ones worth their padding
    assert plan_passes(sizes, pass_cost=200, max_tokens=10_000) == [[0, 1, 2, 3], [4]]


def test_no_pass_over_the_token_cap_unless_one_text_fills_it() -> None:
    sizes = [100] * 6 + [500]
    passes = plan_passes(sizes, pass_cost=1_000, max_tokens=256)
    assert [len(p) for p in passes] == [2, 2, 2, 1]


def test_padding_waste_counts_what_padding_costs() -> None:
    assert padding_waste([10, 10], [[0, 1]]) == 0
    assert padding_waste([10, 30], [[0, 1]]) == pytest.approx(20 / 60)
    assert padding_waste([10, 30], [[0], [1]]) == 0
    assert padding_waste([], []) == 0


async def test_batcher_groups_by_the_lengths_callable() -> None:
    predict = SlowPredict(delay=0.01)
    # token counts that contradict the character counts: grouping must follow the tokens
    tokens = {"aaaaaaaaaa": 100, "b": 104, "cccccccccc": 5, "d": 6}
    batcher = MicroBatcher(
        predict,
        lengths=lambda texts: [tokens[t] for t in texts],
        batch_size=8,
        max_wait_ms=50,
        cache_size=0,
    )
    try:
        results = await asyncio.gather(*(batcher.submit([t]) for t in tokens))
        assert [r[0] for r in results] == [fake_scores(t) for t in tokens]
        assert sorted(map(sorted, predict.calls)) == [["aaaaaaaaaa", "b"], ["cccccccccc", "d"]]
    finally:
        await batcher.aclose()


async def test_failing_lengths_fall_back_to_characters() -> None:
    predict = SlowPredict(delay=0.01)

    def broken(texts: list[str]) -> list[int]:
        raise RuntimeError("tokenizer exploded")

    batcher = MicroBatcher(predict, lengths=broken, batch_size=8, max_wait_ms=50, cache_size=0)
    try:
        texts = ["short", "tiny", "x" * 600]
        results = await asyncio.gather(*(batcher.submit([t]) for t in texts))
        assert [r[0] for r in results] == [fake_scores(t) for t in texts]
        assert sorted(map(len, predict.calls)) == [1, 2]
    finally:
        await batcher.aclose()


def test_local_classifier_counts_tokens(random_head: LocalClassifier) -> None:
    counts = random_head.lengths(["hello", "word " * 2000])
    assert 2 < counts[0] < 10
    assert counts[1] == 512  # truncated like the forward pass
