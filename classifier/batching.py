"""The async front of an in-process classifier: a micro-batcher on a dedicated worker thread.

Callers `await batcher.submit(texts)` from any event loop. Each text that the LRU cache cannot
answer is queued with an asyncio future; one worker thread (never the event loop) drains the
queue for at most `max_wait_ms` or until `batch_size` distinct texts, splits them into forward
passes by `plan_passes` (least padded work; token counts from the optional `lengths` callable,
else characters), runs one blocking `predict` per pass and resolves each future
with `loop.call_soon_threadsafe`. Identical texts waiting together share one computation, and a
text answered while it waited in the queue is taken from the cache instead of recomputed.

The event loop only ever touches the queue and the cache, each behind a lock held for a few
dictionary operations, so it never waits on torch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from classifier.base import ClassifierError, ClassifierUnavailable, Scores

logger = logging.getLogger(__name__)

Predict = Callable[[list[str]], list[Scores]]
Lengths = Callable[[list[str]], list[int]]

# The cost model of a forward pass on CPU, in tokens: every pass costs a fixed overhead (reading
# all the weights once, launching every kernel) of about `_PASS_COST_TOKENS` real tokens, then
# rows x longest row, padding included. Measured on a base-size model (2-core AVX-512 EPYC,
# ONNX Runtime float32 and int8): compute per token barely falls past 2-4 rows, so a padded
# token costs what a real one does, and a short text batched with a long one can cost more than
# the pass it saved.
_PASS_COST_TOKENS = 16
# ... and a pass over this many padded tokens is no cheaper per token, but keeps every caller in
# it waiting for all of it (and int8 grew slower per token past it).
_MAX_PASS_TOKENS = 256
# Without token counts, characters stand in (about four per token in English).
_CHARS_PER_TOKEN = 4
_JOIN_TIMEOUT_S = 30.0


@dataclass(slots=True)
class BatcherStats:
    """Counters for tests and `/metrics`. Written by the worker thread; read them as a snapshot."""

    forward_passes: int = 0
    """Calls to `predict` (one per forward pass `plan_passes` planned)."""
    batch_sizes: list[int] = field(default_factory=list)
    """Texts in each forward pass, in order (the last 10,000 passes)."""
    cache_hits: int = 0
    """Texts answered from the cache, at submit time or after waiting in the queue."""
    cache_misses: int = 0
    """Texts the cache could not answer when submitted."""
    deduplicated: int = 0
    """Texts that shared a computation with an identical text in the same batch."""
    errors: int = 0
    """Forward passes that raised."""


@dataclass(slots=True)
class _Item:
    text: str
    future: asyncio.Future[Scores]
    loop: asyncio.AbstractEventLoop


class MicroBatcher:
    """Batch, deduplicate and cache calls to a blocking `predict(texts) -> list[Scores]`.

    `predict` must return one `Scores` per text, in order; any exception it raises reaches every
    caller of that group as a `ClassifierError`. `lengths`, when given, returns each text's
    token count (cheap: tokenization only) so groups split on what the model really pads.
    Close with `await batcher.aclose()`.
    """

    def __init__(
        self,
        predict: Predict,
        *,
        lengths: Lengths | None = None,
        batch_size: int = 16,
        max_wait_ms: float = 2.0,
        cache_size: int = 4096,
        name: str = "classifier-batcher",
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._predict = predict
        self._lengths = lengths
        self._batch_size = batch_size
        self._max_wait_s = max(max_wait_ms, 0.0) / 1000.0
        self._cache_size = max(cache_size, 0)
        self._cache: OrderedDict[bytes, Scores] = OrderedDict()
        """Keyed by a digest of the text, so a full cache holds `cache_size` small entries
        whatever the texts' length (a client's long texts cannot grow it)."""
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._closed = False
        self.stats = BatcherStats()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed

    async def submit(self, texts: Sequence[str]) -> list[Scores]:
        """Scores for each text, in order. Raises `ClassifierError` when `predict` fails."""
        if self._closed:
            raise ClassifierUnavailable("the classifier is shut down")
        loop = asyncio.get_running_loop()
        results: list[Scores | None] = [None] * len(texts)
        waiting: list[tuple[int, asyncio.Future[Scores]]] = []
        with self._lock:
            for i, text in enumerate(texts):
                hit = self._cache_get(text)
                if hit is not None:
                    self.stats.cache_hits += 1
                    results[i] = hit
                else:
                    self.stats.cache_misses += 1
                    waiting.append((i, loop.create_future()))
        for i, fut in waiting:
            self._queue.put(_Item(texts[i], fut, loop))
        if waiting:
            # gather cancels the futures if this caller is cancelled; the worker skips them.
            done = await asyncio.gather(*(fut for _, fut in waiting))
            for (i, _), scores in zip(waiting, done, strict=True):
                results[i] = scores
        return [r for r in results if r is not None]

    async def aclose(self) -> None:
        """Stop the worker thread after the batch in progress; queued callers get an error."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        # Joining can wait for a forward pass: do it off the event loop.
        await asyncio.to_thread(self._thread.join, _JOIN_TIMEOUT_S)

    # --- cache (call with self._lock held) ---

    def _cache_get(self, text: str) -> Scores | None:
        key = _digest(text)
        scores = self._cache.get(key)
        if scores is not None:
            self._cache.move_to_end(key)
        return scores

    def _cache_put(self, text: str, scores: Scores) -> None:
        if self._cache_size == 0:
            return
        key = _digest(text)
        self._cache[key] = scores
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    # --- worker thread ---

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            distinct = {first.text}
            deadline = time.monotonic() + self._max_wait_s
            while len(distinct) < self._batch_size:
                remaining = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                distinct.add(item.text)
            try:
                self._process(batch)
            except Exception:  # never let a bug kill the worker: every caller would hang
                logger.exception("classifier batch failed")
                _fail(batch, ClassifierError("internal classifier error"))
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                _fail([item], ClassifierUnavailable("the classifier is shut down"))

    def _process(self, batch: list[_Item]) -> None:
        waiters: dict[str, list[_Item]] = {}
        for item in batch:
            # Reading done() from this thread is a benign race: at worst a cancelled caller's
            # text is still computed once.
            if not item.future.done():
                waiters.setdefault(item.text, []).append(item)
        todo: list[str] = []
        with self._lock:
            for text, items in waiters.items():
                hit = self._cache_get(text)
                if hit is None:
                    todo.append(text)
                else:
                    self.stats.cache_hits += len(items)
                    _resolve(items, hit)
            self.stats.deduplicated += sum(len(waiters[t]) - 1 for t in todo)
        for group in self._group(todo):
            self._run_group(group, waiters)

    def _group(self, texts: list[str]) -> list[list[str]]:
        if len(texts) < 2:
            return [texts] if texts else []
        sizes, unit = [len(t) for t in texts], _CHARS_PER_TOKEN
        if self._lengths is not None:
            try:
                counted = self._lengths(texts)
                if len(counted) == len(texts):
                    sizes, unit = list(counted), 1
            except Exception:  # grouping is an optimisation: predict reports real errors
                logger.debug("token lengths failed; grouping by characters", exc_info=True)
        passes = plan_passes(
            sizes, pass_cost=_PASS_COST_TOKENS * unit, max_tokens=_MAX_PASS_TOKENS * unit
        )
        return [[texts[i] for i in indices] for indices in passes]

    def _run_group(self, group: list[str], waiters: dict[str, list[_Item]]) -> None:
        try:
            scores = self._predict(group)
            if len(scores) != len(group):
                raise ClassifierError(f"predict returned {len(scores)} results for {len(group)}")
        except Exception as exc:
            error = exc
            if not isinstance(exc, ClassifierError):
                error = ClassifierError(f"classifier failed: {type(exc).__name__}: {exc}")
                error.__cause__ = exc
            with self._lock:
                self.stats.forward_passes += 1
                self.stats.errors += 1
                self._record(len(group))
            for text in group:
                _fail(waiters[text], error)
            return
        with self._lock:
            self.stats.forward_passes += 1
            self._record(len(group))
            for text, result in zip(group, scores, strict=True):
                self._cache_put(text, result)
        for text, result in zip(group, scores, strict=True):
            _resolve(waiters[text], result)

    def _record(self, size: int) -> None:
        sizes = self.stats.batch_sizes
        sizes.append(size)
        if len(sizes) > 10_000:
            del sizes[:5_000]


def plan_passes(sizes: Sequence[int], *, pass_cost: int, max_tokens: int) -> list[list[int]]:
    """The forward passes to run for texts of `sizes` tokens, as lists of indices into `sizes`:
    the split that costs least when a pass costs `pass_cost` plus its rows times its longest row,
    with no pass over `max_tokens` padded tokens unless it holds a single text.

    Shorter passes come first. Only runs of neighbours in length order can be optimal, so this
    is an exact dynamic programme over the sorted sizes: O(n^2) for n texts, about 130 steps
    for a batch of 16."""
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    ordered = [sizes[i] for i in order]
    # best[j]: least cost of the first j texts; start[j]: where the last pass of that begins.
    best = [0.0] + [float("inf")] * len(ordered)
    start = [0] * (len(ordered) + 1)
    for j in range(1, len(ordered) + 1):
        longest = ordered[j - 1]
        for i in range(j - 1, -1, -1):
            rows = j - i
            if rows > 1 and rows * longest > max_tokens:
                break  # longer runs ending at j only pad more
            cost = best[i] + pass_cost + rows * longest
            if cost < best[j]:
                best[j], start[j] = cost, i
    passes: list[list[int]] = []
    j = len(ordered)
    while j > 0:
        passes.append(order[start[j] : j])
        j = start[j]
    return passes[::-1]


def padding_waste(sizes: Sequence[int], passes: Sequence[Sequence[int]]) -> float:
    """The share of the padded tokens of `passes` (lists of indices into `sizes`) that are
    padding: 0 when every pass holds texts of one length."""
    padded = sum(len(p) * max(sizes[i] for i in p) for p in passes if p)
    real = sum(sizes[i] for p in passes for i in p)
    return 1 - real / padded if padded else 0.0


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _resolve(items: list[_Item], scores: Scores) -> None:
    for item in items:
        _settle(item, scores)


def _fail(items: list[_Item], error: BaseException) -> None:
    for item in items:
        _settle(item, error)


def _settle(item: _Item, outcome: Scores | BaseException) -> None:
    # The caller's loop may be closed already: then nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        item.loop.call_soon_threadsafe(_set, item.future, outcome)


def _set(future: asyncio.Future[Scores], outcome: Scores | BaseException) -> None:
    if future.done():  # the caller was cancelled meanwhile
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
