"""Shadow judging: checks, on live traffic, the router's prediction that the strong model wins.

    shadow = Shadow(settings, client, ledger)     # in the app's lifespan, with `quality:` on
    await shadow.start()                          # today's recorded spend counts against the cap
    shadow.consider(request_id, provider=..., call=..., decision=..., pair=..., answer=...)
    await shadow.aclose()                         # cancels the jobs still running

For `quality.shadow_share` of the routed Chat Completions requests (reasons `strong` and
`weak`), once the client's answer is settled, a background job sends the same request,
non-streamed, to the model the router did not pick; a streamed client answer was never
buffered, so the picked model is then asked again too. A judge model compares the two answers
(`JUDGE_SYSTEM` and `judge_prompt`), shown in a random order against position bias, and its
verdict is mapped back to `strong`, `tie` or `weak` and kept in the ledger with what the calls
cost.

The jobs send on the app's `httpx.AsyncClient` directly: never through the `Forwarder`, so their
failures open no breaker that serves clients and count in no client metric. At most
`quality.concurrency` jobs run at once; a request sampled while all are busy waits in a queue of
`quality.queue` and starts when a job ends, so the share judged is the share configured: it is
skipped only when the queue is full (counted as `busy`) or the day's budget is spent.
Spend is summed per UTC day from the answers' usage at the models' prices (`load_settings`
refuses shadowing when a model it may call has no price); a successful answer without usage is
counted at a worst case of one token per byte of request and answer, and a failed one (HTTP
4xx/5xx, which providers do not bill) at its reported usage or nothing. No job starts once
the day's spend reaches `quality.daily_budget_usd`; the jobs already running may pass it by at
most their own cost.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx

from gateway.apis import ChatCompletions
from gateway.apis.base import Provider
from gateway.ledger import reports
from gateway.ledger.pricing import Usage, cost
from gateway.ledger.quality import Verdict
from gateway.ledger.writer import Ledger, VerdictRow
from gateway.routing.call import Call
from gateway.routing.decider import Decision
from gateway.routing.human_text import content_text
from gateway.settings.load import Settings
from gateway.upstream.forwarder import TRANSPORT_ERRORS

__all__ = ["JUDGE_SYSTEM", "Shadow", "ShadowStats", "judge_prompt", "read_verdict"]

log = logging.getLogger("routellm.shadow")

JUDGE_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by "
    "two AI assistants to the user question displayed below. Choose the assistant that follows "
    "the user's instructions and answers the user's question better, considering helpfulness, "
    "relevance, accuracy, depth, creativity and level of detail. Avoid any position bias: the "
    "order in which the responses are presented must not influence your decision, nor must "
    "their length or the assistants' names. Be as objective as possible. After a short "
    'explanation, output your final verdict on the last line in exactly this format: "[[A]]" '
    'if assistant A is better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)
"""The judge's system message (after MT-Bench's pairwise judge prompt)."""
JUDGED_REASONS = ("strong", "weak")
"""Decisions of the win-rate rule: those with a strong and a weak model to compare."""
VERDICT_MARK = re.compile(r"\[\[([ABC])\]\]")
ERROR_CHARS = 500
START_DELAY = 0.01
"""Seconds a job waits before its first call: it is created while the client's non-streamed
answer is still being written, and must not take the event loop before that answer is out."""
CHAT = ChatCompletions()


class ShadowFailed(Exception):
    """A shadow or judge call gave no usable answer; the message is kept in the ledger."""


@dataclass
class ShadowStats:
    """This process's counters since start (`/v1/dashboard`): requests eligible for judging and
    those sampled, jobs started, verdicts, failures, and sampled requests not judged because the
    queue was full (`busy`) or the day's budget was spent."""

    eligible: int = 0
    sampled: int = 0
    started: int = 0
    judged: int = 0
    failed: int = 0
    busy: int = 0
    over_budget: int = 0


def judge_prompt(question: str, first: str, second: str) -> str:
    """The judge's user message: the conversation, then the two answers as A and B."""
    return (
        f"[User Question]\n{question}\n\n"
        f"[The Start of Assistant A's Answer]\n{first}\n[The End of Assistant A's Answer]\n\n"
        f"[The Start of Assistant B's Answer]\n{second}\n[The End of Assistant B's Answer]"
    )


def read_verdict(text: str, strong_first: bool) -> Verdict:
    """The judge's last `[[A]]`/`[[B]]`/`[[C]]`, mapped back through the order it was shown."""
    marks = VERDICT_MARK.findall(text)
    if not marks:
        raise ShadowFailed("the judge's answer has no [[A]], [[B]] or [[C]] verdict")
    mark = marks[-1]
    if mark == "C":
        return "tie"
    return "strong" if (mark == "A") == strong_first else "weak"


def render_conversation(messages: Sequence[Any]) -> str:
    """The request's messages as the judge reads them: one `[role]` block per message."""
    blocks = []
    for message in messages:
        if isinstance(message, Mapping):
            role = str(message.get("role", "user"))
            blocks.append(f"[{role}]\n{content_text(message.get('content'))}")
    return "\n\n".join(blocks)


def answer_text(body: Mapping[str, Any]) -> str:
    """The text of a non-streamed Chat Completions answer; `ShadowFailed` when it has none."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ShadowFailed("the answer has no choices[0].message") from None
    if not isinstance(content, str) or not content:
        raise ShadowFailed("the answer has no text to judge (tool calls or refusal)")
    return content


class Shadow:
    """The shadow judge of one gateway process: sampling, budget, bounded background jobs."""

    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient,
        ledger: Ledger,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.quality
        self.client = client
        self.ledger = ledger
        # Sampling and answer order need no secrecy, only independence from the traffic.
        self.rng = rng or random.Random()  # noqa: S311
        self.stats = ShadowStats()
        self._jobs: set[asyncio.Task[None]] = set()
        self._waiting: collections.deque[tuple[Any, ...]] = collections.deque()
        self._day = ""
        self._spent = 0.0

    async def start(self) -> None:
        """Count what the ledger already holds for today against the cap, so that a restart
        does not reset the day's budget."""
        day, midnight = _today()
        try:
            spent = await reports.shadow_spend(self.ledger, midnight)
        except Exception as exc:  # a store that cannot be read: start from 0, and say so
            log.warning(
                "shadow: today's spend is unknown (%s); counting from 0", type(exc).__name__
            )
            spent = 0.0
        self._day, self._spent = day, spent

    def spent_today(self) -> float:
        day, _ = _today()
        if day != self._day:
            self._day, self._spent = day, 0.0
        return self._spent

    @property
    def waiting(self) -> int:
        """Sampled requests queued for a job."""
        return len(self._waiting)

    def consider(
        self,
        request_id: str,
        *,
        provider: Provider,
        call: Call,
        decision: Decision,
        pair: tuple[str, str] | None,
        answer: bytes | None,
    ) -> bool:
        """Maybe judge one finished request (`pair`: its router's strong and weak model;
        `answer`: the client's non-streamed answer, None when it was streamed). Returns at
        once; True when a job started or waits in the queue."""
        if (
            provider.name != "chat"
            or pair is None
            or decision.reason not in JUDGED_REASONS
            or decision.score is None
        ):
            return False
        self.stats.eligible += 1
        # Where a shadow-mode candidate chose otherwise, the verdict is what tells them apart:
        # such requests are always sampled, and go to the front of the queue.
        disagrees = decision.candidate_model not in (None, decision.model)
        if not disagrees and self.rng.random() >= self.config.shadow_share:
            return False
        self.stats.sampled += 1
        if self.spent_today() >= self.config.daily_budget_usd:
            self.stats.over_budget += 1
            return False
        job = (request_id, call, decision, pair, answer)
        if len(self._jobs) < self.config.concurrency:
            self._start(job)
        elif len(self._waiting) < self.config.queue:
            if disagrees:
                self._waiting.appendleft(job)
            else:
                self._waiting.append(job)
        else:
            self.stats.busy += 1
            return False
        return True

    def _start(self, job: tuple[Any, ...]) -> None:
        self.stats.started += 1
        task = asyncio.ensure_future(self._judge(*job))
        self._jobs.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        """A job ended: the next waiting request takes its place, budget permitting."""
        self._jobs.discard(task)
        while self._waiting and len(self._jobs) < self.config.concurrency:
            job = self._waiting.popleft()
            if self.spent_today() >= self.config.daily_budget_usd:
                self.stats.over_budget += 1
                continue
            self._start(job)

    async def aclose(self) -> None:
        """Drop the waiting requests and cancel the jobs still running; each records what it
        had spent."""
        self._waiting.clear()
        for job in list(self._jobs):
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)

    async def _judge(
        self,
        request_id: str,
        call: Call,
        decision: Decision,
        pair: tuple[str, str],
        answer: bytes | None,
    ) -> None:
        strong, weak = pair
        picked = decision.model
        other = weak if picked == strong else strong
        judge = self.config.judge
        assert judge is not None  # `load_settings` requires one when shadowing is on
        strong_first = self.rng.random() < 0.5
        spent = [0.0]
        verdict: Verdict | None = None
        error: str | None = None
        try:
            await asyncio.sleep(START_DELAY)
            async with asyncio.timeout(self.config.timeout):
                shadow_call = _unstreamed(call)
                if answer is not None:
                    picked_text = answer_text(json.loads(answer))
                else:
                    picked_text = await self._ask(picked, shadow_call, spent)
                other_text = await self._ask(other, shadow_call, spent)
                texts = {picked: picked_text, other: other_text}
                first, second = (
                    (texts[strong], texts[weak]) if strong_first else (texts[weak], texts[strong])
                )
                messages = call.body.get("messages")
                question = render_conversation(messages if isinstance(messages, list) else [])
                judge_call = _judge_call(question, first, second)
                verdict = read_verdict(await self._ask(judge, judge_call, spent), strong_first)
        except asyncio.CancelledError:
            error = "cancelled at shutdown"
            raise
        except TimeoutError:
            error = f"timed out after {self.config.timeout:g} s"
        except (ShadowFailed, *TRANSPORT_ERRORS, ValueError) as exc:
            error = str(exc)[:ERROR_CHARS] or type(exc).__name__
        finally:
            self._settle(
                VerdictRow(
                    request_id=request_id,
                    created=time.time(),
                    strong=strong,
                    weak=weak,
                    judge=judge,
                    picked=picked,
                    verdict=verdict,
                    win_rate=float(decision.score or 0.0),
                    threshold=decision.threshold,
                    strong_first=strong_first,
                    cost_usd=spent[0],
                    error=error,
                )
            )

    def _settle(self, row: VerdictRow) -> None:
        self.spent_today()  # a job that ends after midnight counts on the new day
        self._spent += row.cost_usd
        if row.verdict is None:
            self.stats.failed += 1
            log.warning("shadow: %s not judged: %s", row.request_id, row.error)
        else:
            self.stats.judged += 1
        self.ledger.record(row)

    async def _ask(self, model: str, call: Call, spent: list[float]) -> str:
        """One non-streamed Chat Completions call to `model`; its cost is added to `spent`
        as soon as an answer arrives, even one that then proves unusable."""
        target = self.settings.models[model]
        upstream = self.settings.upstreams[target.upstream]
        built = CHAT.request(upstream, target.upstream_model, call)
        url = f"{upstream.base_url}{built.path}"
        async with self.client.stream(
            "POST", url, content=built.content, headers=built.headers
        ) as response:
            raw = await _read_bounded(response, self.settings.max_response_bytes)
        usage = None
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if isinstance(body, dict):
            usage = Usage.from_openai(body.get("usage"))
        if usage is None and response.status_code < 300:
            usage = Usage(len(built.content), len(raw))  # the stated worst case: a token a byte
        spent[0] += cost(target.price, usage) or 0.0
        if response.status_code >= 300:
            raise ShadowFailed(f"{model!r} answered HTTP {response.status_code}")
        if not isinstance(body, dict):
            raise ShadowFailed(f"{model!r} answered something that is not a JSON object")
        return answer_text(body)


def _unstreamed(call: Call) -> Call:
    body = {k: v for k, v in call.body.items() if k not in ("stream", "stream_options")}
    return replace(call, stream=False, body=body)


def _judge_call(question: str, first: str, second: str) -> Call:
    body = {
        "messages": [
            {"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": judge_prompt(question, first, second)},
        ]
    }
    return Call(model="judge", stream=False, body=body)


async def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > limit:
            raise ShadowFailed(f"the answer is larger than {limit} bytes")
    return bytes(data)


def _today() -> tuple[str, float]:
    """The UTC date, and its midnight in unix seconds."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return now.date().isoformat(), midnight.timestamp()
