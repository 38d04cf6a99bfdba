"""Bounded soak test: the real gateway, under faults, loses no request, FD or upstream stream.

    .venv/bin/python bench/soak.py                                  # 2000 requests or 120 s
    .venv/bin/python bench/soak.py --requests 500 --concurrency 16  # quicker

The run lowers its own priority (`--nice 10`, inherited by its child processes); about 60-100 s
on 2 cores.

What it runs, all on 127.0.0.1 and all cleaned up on exit:

- the fault-injecting fake upstream (`tests/gateway/fake_upstream.py`) in its own uvicorn process,
  wrapped so that a handler still running when the gateway drops its connection is cancelled
  (plain uvicorn lets it run on): its open/closed counters then say whether the gateway closed
  every upstream request. `GET /_stats` reports them;
- a tiny random XLM-RoBERTa checkpoint (`classifier.synthetic.build_checkpoint`, LABEL_2 wins);
- the real gateway, `.venv/bin/routellm-gateway --config <yaml>`, with
  `ROUTELLM_UPSTREAM_TIMEOUT` (default 2 s) so hangs and stalls resolve quickly. Every fake
  behaviour is a model on its own upstream (so one behaviour's circuit breaker does not trip
  another's); strong/weak/fallback are `ok:*`; `router` is mapped (LABEL_2) to `flaky`, an
  upstream answering 503, so it exercises the fallback path.

Then it sends `--requests` mixed requests (bounded by `--seconds` too) at `--concurrency`:
routed and direct names of every behaviour, stream and non-stream, CR/LF inside user text,
unknown models and malformed bodies, clients that hang up after the first event and clients
that give up before the answer. Each request ends as exactly one of

    complete    non-stream 200 with a JSON chat.completion; or a stream whose every event is
                `data: <json>\\n\\n`, every choice with a finish_reason key, ended by `data: [DONE]`
    error       a 4xx/5xx JSON body {"error": {"message", "type", "param", "code"}}; or a stream
                ended by a `data: {"error": ...}` event and no [DONE]
    abandoned   this client hung up on purpose
    LOST        anything else: reset, malformed framing, a hang past the client deadline
                (3 x the upstream timeout), a 200 with an empty body, ...

and it checks that the gateway's open file descriptors did not grow, its in-flight gauge is back
to 0, and the fake upstream saw every request it served closed. Exit status 1 when any of those
fail, 2 when the harness itself could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OK_BEHAVIOURS = ["crlf", "split", "slow-first", "no-done"]
FAULT_BEHAVIOURS = [
    "status-500",
    "status-429",
    "status-400",
    "status-401",
    "html-502",
    "hang",
    "cut",
    "stall",
]
FD_MARGIN = 8
LAG: list[float] = []
"""Client event-loop lag samples (seconds) during the load phase."""
CHAT_HEADERS = ("x-routellm-model", "x-routellm-label", "x-routellm-score", "x-routellm-reason")


# ---------------------------------------------------------------- the fake upstream (child process)


def serve_upstream(port: int) -> None:
    """Run the fake upstream on 127.0.0.1:`port` until SIGTERM (the `--serve-upstream` mode)."""
    import uvicorn

    from tests.gateway.fake_upstream import FakeUpstream

    fake = FakeUpstream()
    stats = {"disconnect_cancels": 0}
    seen_ids: set[str] = set()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await fake(scope, receive, send)
            return
        if scope["path"] == "/_stats":
            body = json.dumps(
                {
                    "requests": len(fake.history),
                    "opened": fake.open_streams,
                    "closed": fake.closed_streams,
                    "cancelled": fake.cancelled,
                    "disconnect_cancels": stats["disconnect_cancels"],
                    "seen_ids": sorted(seen_ids),
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        raw = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        with contextlib.suppress(ValueError, AttributeError):
            soak_id = json.loads(raw).get("soak_id")
            if soak_id:
                seen_ids.add(soak_id)
        replay = [{"type": "http.request", "body": raw, "more_body": False}]
        gone = asyncio.Event()
        complete = False

        async def inner_receive() -> dict[str, Any]:
            if replay:
                return replay.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        async def inner_send(message: dict[str, Any]) -> None:
            nonlocal complete
            if message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        async def watch() -> None:
            # uvicorn answers http.disconnect when the peer closes or once the response is complete
            while (await receive())["type"] != "http.disconnect":
                pass

        task = asyncio.ensure_future(fake(scope, inner_receive, inner_send))
        watcher = asyncio.ensure_future(watch())
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and not complete:
            # The gateway dropped the connection while the handler still ran: end it, as a real
            # server would when its client goes away.
            gone.set()
            stats["disconnect_cancels"] += 1
            task.cancel()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # re-raises the fake's own failures ("cut"), so uvicorn resets the stream

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="critical",
        access_log=False,
        timeout_keep_alive=5,
    )


# ---------------------------------------------------------------- harness helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, upstream_url: str) -> None:
    import yaml

    upstreams: dict[str, Any] = {"good": {"base_url": f"{upstream_url}/v1"}}
    models: dict[str, Any] = {
        "strong": {"upstream": "good", "model": "ok:strong"},
        "weak": {"upstream": "good", "model": "ok:weak"},
        "fallback": {"upstream": "good", "model": "ok:fallback"},
        "flaky": {"upstream": "flaky", "model": "status-503"},
    }
    upstreams["flaky"] = {"base_url": f"{upstream_url}/v1"}
    for behaviour in OK_BEHAVIOURS + FAULT_BEHAVIOURS:
        upstreams[behaviour] = {"base_url": f"{upstream_url}/v1"}
        models[behaviour] = {"upstream": behaviour, "model": behaviour}
    doc = {
        "upstreams": upstreams,
        "models": models,
        "routing": {
            "mapping": {"LABEL_0": "strong", "LABEL_1": "weak", "LABEL_2": "flaky"},
            "threshold": 0.5,
            "strong": "strong",
            "weak": "weak",
            "fallback": "fallback",
        },
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before it served")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")


def start_upstream(port: int) -> subprocess.Popen[bytes]:
    """The fake upstream (this script's `--serve-upstream` mode) on 127.0.0.1:`port`."""
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-upstream", str(port)]
    return subprocess.Popen(command, cwd=ROOT)


def start_gateway(port: int, config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The real `routellm-gateway` on 127.0.0.1:`port` with `config`; its log discarded."""
    command = [str(ROOT / ".venv/bin/routellm-gateway"), "--port", str(port)]
    command += ["--config", str(config)]
    return subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# ---------------------------------------------------------------- requests and their outcomes


@dataclass
class Plan:
    model: str
    stream: bool
    body: bytes
    mode: str = "normal"
    """normal, hangup-first-event (close after the first event), give-up (client timer)."""
    give_up_after: float = 0.0
    expect: str = "complete"
    """What a correct gateway answers: complete, error, or either (faults whose outcome depends
    on breaker state or timing). Mismatches are reported, not counted as lost."""


@dataclass
class Result:
    plan: Plan
    outcome: str  # complete, error, abandoned, lost
    kind: str
    detail: str = ""
    seconds: float = 0.0
    at: float = field(default_factory=time.time)
    """Wall-clock time the request was sent, to find it in the gateway's log."""


CR_LF_TEXTS = [
    "first line\r\nsecond line\r\n\r\ndata: [DONE]\r\n\r\n",
    'event: message\nid: 1\n: comment\ndata: {"x": 1}\n\nafter',
    "carriage\ronly\rreturns\r",
    "mixed\n\r\n\r\r\n endings \u2028 and \u0085 too",
]


def make_plans(n: int, seed: int) -> list[Plan]:
    """`n` requests; each body carries an unknown field `soak_id` (passed through untouched), so
    the fake upstream can tell which lost requests reached it."""
    from classifier.synthetic import corpus

    rng = random.Random(seed)  # reproducible load, not a secret
    texts = corpus(n=500, seed=seed)
    # (model, weight, expected non-stream, expected stream)
    table: list[tuple[str, int, str, str]] = [
        ("router", 12, "complete", "complete"),
        ("router-bert-0.5", 10, "complete", "complete"),
        ("router-bert-0.0", 4, "complete", "complete"),
        ("strong", 6, "complete", "complete"),
        ("weak", 4, "complete", "complete"),
        ("crlf", 5, "complete", "complete"),
        ("split", 5, "complete", "complete"),
        ("slow-first", 3, "complete", "complete"),
        ("no-done", 4, "complete", "complete"),
        ("status-500", 4, "error", "error"),
        ("status-429", 3, "error", "error"),
        ("status-400", 3, "error", "error"),
        ("status-401", 2, "error", "error"),
        ("html-502", 3, "error", "error"),
        ("hang", 3, "error", "error"),
        ("cut", 5, "complete", "error"),  # the fake only cuts streams
        ("stall", 4, "complete", "error"),
        ("no-such-model", 2, "error", "error"),
        ("router-gpt-0.5", 1, "error", "error"),
        ("<bad-body>", 2, "error", "error"),
    ]
    names = [t[0] for t in table]
    weights = [t[1] for t in table]
    expected = {t[0]: (t[2], t[3]) for t in table}
    plans = []
    for index in range(n):
        model = rng.choices(names, weights)[0]
        stream = rng.random() < 0.55
        text = rng.choice(texts)
        if rng.random() < 0.2:
            text = rng.choice(CR_LF_TEXTS) + text
        messages: list[dict[str, Any]] = [{"role": "user", "content": text}]
        if rng.random() < 0.3:
            messages.insert(0, {"role": "system", "content": "You are terse.\r\nReally."})
        if model == "<bad-body>":
            body = rng.choice([b"{not json", b'{"model": "router", "messages": []}', b"[1, 2]"])
        else:
            payload: dict[str, Any] = {
                "model": model,
                "messages": messages,
                "stream": stream,
                "soak_id": f"{seed}-{index}",
            }
            if rng.random() < 0.2:
                payload["temperature"] = 0.2
                payload["x_unknown_field"] = {"kept": True}
            body = json.dumps(payload).encode()
        plan = Plan(model, stream, body, expect=expected[model][1 if stream else 0])
        if model in ("hang", "status-429", "status-500", "html-502"):
            plan.expect = "error"
        r = rng.random()
        if stream and model not in ("<bad-body>", "no-such-model", "router-gpt-0.5") and r < 0.12:
            plan.mode = "hangup-first-event"
        elif r > 0.95 or (model in ("hang", "slow-first", "stall") and r > 0.75):
            plan.mode = "give-up"
            plan.give_up_after = rng.uniform(0.05, 1.0)
        plans.append(plan)
    return plans


def check_error_object(error: Any) -> str | None:
    if not isinstance(error, dict):
        return "error is not an object"
    missing = {"message", "type", "param", "code"} - set(error)
    if missing:
        return f"error lacks {sorted(missing)}"
    if not isinstance(error["message"], str) or not error["message"]:
        return "error.message is not a non-empty string"
    return None


def judge_stream(raw: bytes) -> tuple[str, str, str]:
    """(outcome, kind, detail) of a whole SSE body, per the contract's streaming rules."""
    if not raw:
        return "lost", "empty stream", ""
    if not raw.endswith(b"\n\n"):
        return "lost", "stream not ended by a blank line", repr(raw[-120:])
    if b"\r" in raw:
        return "lost", "CR in stream", repr(raw[:120])
    events = raw[:-2].split(b"\n\n")
    for i, event in enumerate(events):
        last = i == len(events) - 1
        if not event.startswith(b"data: ") or b"\n" in event:
            return "lost", "malformed event", repr(event[:160])
        data = event[6:]
        if data == b"[DONE]":
            if not last:
                return "lost", "events after [DONE]", repr(events[i + 1][:120])
            return "complete", "stream [DONE]", ""
        try:
            chunk = json.loads(data)
        except ValueError:
            return "lost", "event is not JSON", repr(data[:160])
        if not isinstance(chunk, dict):
            return "lost", "event is not an object", repr(data[:160])
        if "error" in chunk:
            problem = check_error_object(chunk["error"])
            if problem:
                return "lost", f"stream error event: {problem}", repr(data[:200])
            if not last:
                return "lost", "events after an error event", repr(events[i + 1][:120])
            return "error", f"stream-error {chunk['error'].get('code')}", ""
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return "lost", "chunk without choices", repr(data[:160])
        for choice in choices:
            if not isinstance(choice, dict) or "finish_reason" not in choice:
                return "lost", "choice without finish_reason", repr(data[:160])
    return "lost", "stream ended without [DONE] or an error event", repr(raw[-160:])


def judge(status: int, headers: Any, raw: bytes, plan: Plan) -> tuple[str, str, str]:
    media = headers.get("content-type", "")
    if media.startswith("text/event-stream"):
        if status != 200:
            return "lost", f"event stream with status {status}", repr(raw[:160])
        if not plan.stream:
            return "lost", "event stream for a non-stream request", ""
        missing = [h for h in CHAT_HEADERS if h not in headers]
        if missing:
            return "lost", f"stream without {missing[0]}", ""
        return judge_stream(raw)
    if not raw:
        return "lost", f"HTTP {status} with an empty body", ""
    try:
        doc = json.loads(raw)
    except ValueError:
        return "lost", f"HTTP {status} body is not JSON", repr(raw[:160])
    if status == 200:
        if plan.stream:
            return "lost", "JSON 200 for a stream request", repr(raw[:160])
        if not isinstance(doc, dict) or doc.get("object") != "chat.completion":
            return "lost", "200 that is not a chat.completion", repr(raw[:160])
        choices = doc.get("choices")
        if (
            not isinstance(choices, list)
            or not choices
            or not all(
                isinstance(c, dict) and isinstance(c.get("message"), dict) and "finish_reason" in c
                for c in choices
            )
        ):
            return "lost", "chat.completion with bad choices", repr(raw[:160])
        missing = [h for h in CHAT_HEADERS if h not in headers]
        if missing:
            return "lost", f"completion without {missing[0]}", ""
        return "complete", "json 200", ""
    if 400 <= status < 600:
        problem = check_error_object(doc.get("error") if isinstance(doc, dict) else None)
        if problem:
            return "lost", f"HTTP {status}: {problem}", repr(raw[:160])
        if status == 429 and "retry-after" not in headers:
            return "lost", "429 without Retry-After", ""
        return "error", f"HTTP {status} {doc['error'].get('code')}", ""
    return "lost", f"unexpected HTTP {status}", repr(raw[:160])


async def one(client: Any, url: str, plan: Plan, deadline: float) -> Result:
    import httpx

    started = time.perf_counter()
    sent_at = time.time()
    headers = {"content-type": "application/json"}
    if plan.stream:
        headers["accept"] = "text/event-stream"
    give_up = plan.give_up_after if plan.mode == "give-up" else None
    limit = min(deadline, give_up) if give_up is not None else deadline
    raw = b""
    status = 0
    resp_headers: Any = {}
    steps: list[str] = []

    async def trace(name: str, info: dict[str, Any]) -> None:
        # httpcore's trace hook: where a lost request stopped, and on which client socket.
        step = f"{name}@{(time.perf_counter() - started) * 1000:.0f}ms"
        stream = info.get("return_value")
        if name == "connection.connect_tcp.complete" and stream is not None:
            step += f"(port {stream.get_extra_info('socket').getsockname()[1]})"
        steps.append(step)

    def where() -> str:
        short = [
            s.replace("http11.", "")
            .replace("connection.", "")
            .replace("_request", "")
            .replace("_response", "")
            for s in steps
            if not s.startswith("response_closed")
        ]
        return f" [client steps: {', '.join(short) or 'none: waiting for a pooled connection'}]"

    try:
        async with asyncio.timeout(limit):
            request = client.build_request(
                "POST", url, content=plan.body, headers=headers, extensions={"trace": trace}
            )
            response = await client.send(request, stream=True)
            try:
                status, resp_headers = response.status_code, response.headers
                async for chunk in response.aiter_raw():
                    raw += chunk
                    if plan.mode == "hangup-first-event" and status == 200 and b"\n\n" in raw:
                        first = raw.split(b"\n\n", 1)[0]
                        if first.startswith(b"data: ") and not first.startswith(b'data: {"error"'):
                            return Result(
                                plan,
                                "abandoned",
                                "hung up after the first event",
                                seconds=time.perf_counter() - started,
                            )
            finally:
                await response.aclose()
    except TimeoutError:
        elapsed = time.perf_counter() - started
        if give_up is not None and elapsed < deadline:
            return Result(plan, "abandoned", "gave up before the answer", seconds=elapsed)
        return Result(
            plan,
            "lost",
            "hang past the client deadline",
            f"status={status} got {len(raw)} bytes: {raw[-120:]!r}{where()}",
            elapsed,
            sent_at,
        )
    except httpx.HTTPError as exc:
        cause = exc.__cause__ or exc.__context__
        why = f"{exc!r} <- {cause!r}" if cause else repr(exc)
        return Result(
            plan,
            "lost",
            f"transport: {type(exc).__name__}",
            f"status={status} got {len(raw)} bytes {raw[-80:]!r}: {why[:200]}{where()}",
            time.perf_counter() - started,
            sent_at,
        )
    elapsed = time.perf_counter() - started
    outcome, kind, detail = judge(status, resp_headers, raw, plan)
    return Result(plan, outcome, kind, detail, elapsed, sent_at)


async def run_load(
    url: str, plans: list[Plan], concurrency: int, seconds: float, deadline: float
) -> tuple[list[Result], float, int]:
    import httpx

    results: list[Result] = []
    queue = iter(plans)
    stop_at = time.monotonic() + seconds
    skipped = 0
    # One keep-alive client per worker, used sequentially: the gateway still sees reused
    # connections, but httpcore 1.0.9's shared-pool races under cancellation (a queued request
    # can wait seconds for a connection: encode/httpcore#822, #1093) cannot stall the harness.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=1)
    timeout = httpx.Timeout(None, connect=5)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False)
            )
            for _ in range(concurrency)
        ]

        async def worker(client: Any) -> None:
            for plan in queue:
                if time.monotonic() > stop_at:
                    return
                results.append(await one(client, url, plan, deadline))

        async def watch_lag() -> None:
            # How late this client's own event loop runs: a request judged "hung" while the
            # client itself lagged by seconds says more about this machine than the gateway.
            while True:
                before = time.perf_counter()
                await asyncio.sleep(0.05)
                LAG.append(time.perf_counter() - before - 0.05)

        started = time.perf_counter()
        lag = asyncio.ensure_future(watch_lag())
        await asyncio.gather(*(worker(client) for client in clients))
        lag.cancel()
        elapsed = time.perf_counter() - started
    skipped = len(plans) - len(results)
    return results, elapsed, skipped


async def prime(base: str, n: int = 3) -> None:
    """A few sequential requests on a fresh client, so the gateway's upstream pool drops
    connections the upstream closed while idle: start and end FD counts are then comparable."""
    import httpx

    body = {"model": "strong", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        for _ in range(n):
            await client.post(f"{base}/v1/chat/completions", json=body)


async def fetch_json(url: str) -> Any:
    import httpx

    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        return (await client.get(url)).json()


async def inflight(base: str) -> float | None:
    import httpx

    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        text = (await client.get(f"{base}/metrics")).text
    for line in text.splitlines():
        if line.startswith("routellm_inflight_requests "):
            return float(line.split()[1])
    return None


@dataclass
class Sample:
    rss_mb: float
    fds: int
    connections: int
    states: str


def sample(pid: int) -> Sample:
    import psutil

    proc = psutil.Process(pid)
    conns = proc.net_connections("inet")
    states = ", ".join(f"{k} {v}" for k, v in sorted(Counter(c.status for c in conns).items()))
    return Sample(proc.memory_info().rss / 2**20, proc.num_fds(), len(conns), states)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(
    results: list[Result],
    elapsed: float,
    skipped: int,
    start: Sample,
    end: Sample,
    ups: dict[str, Any],
    gauge: float | None,
    log_errors: list[str],
    args: Any,
) -> int:
    failures: list[str] = []
    by_outcome = Counter(r.outcome for r in results)
    print("\n=== routellm-gateway soak ===")
    print(
        f"requests sent     {len(results)}  (planned {len(results) + skipped}; not sent before "
        f"--seconds ran out: {skipped})"
    )
    print(
        f"concurrency       {args.concurrency}   upstream timeout {args.upstream_timeout:g} s   "
        f"client deadline {args.upstream_timeout * 3:g} s"
    )
    print(
        f"load phase        {elapsed:.1f} s   throughput {len(results) / elapsed:.1f} req/s "
        f"({by_outcome['complete'] / elapsed:.1f} complete/s)"
    )
    if LAG:
        print(
            f"client loop lag   p50 {pct(LAG, 0.5) * 1000:.0f} ms   "
            f"p99 {pct(LAG, 0.99) * 1000:.0f} ms   max {max(LAG) * 1000:.0f} ms  "
            "(this harness's own event loop)"
        )
    print("\nby outcome:")
    for outcome in ("complete", "error", "abandoned", "lost"):
        print(f"  {outcome:<10} {by_outcome[outcome]:>6}")
    print("\nby kind:")
    for (outcome, kind), n in sorted(Counter((r.outcome, r.kind) for r in results).items()):
        print(f"  {outcome:<10} {kind:<45} {n:>6}")
    print("\nby requested model (complete/error/abandoned/lost):")
    per_model: dict[str, Counter[str]] = {}
    for r in results:
        key = f"{r.plan.model}{' stream' if r.plan.stream else ''}"
        per_model.setdefault(key, Counter())[r.outcome] += 1
    for key in sorted(per_model):
        c = per_model[key]
        print(f"  {key:<26} {c['complete']:>5} {c['error']:>5} {c['abandoned']:>5} {c['lost']:>5}")
    unexpected = [
        r for r in results if r.outcome in ("complete", "error") and r.plan.expect != r.outcome
    ]
    if unexpected:
        print(f"\nunexpected but well-formed outcomes: {len(unexpected)} (not counted as lost)")
        for (model, stream, kind), n in Counter(
            (r.plan.model, r.plan.stream, r.kind) for r in unexpected
        ).most_common(8):
            print(f"  {model}{' stream' if stream else ''}: {kind} x{n}")
    lost = [r for r in results if r.outcome == "lost"]
    seen = set(ups.get("seen_ids", ()))
    print(f"\nLOST              {len(lost)}")
    for r in lost[:10]:
        if b'"soak_id"' in r.plan.body:
            reached = json.loads(r.plan.body)["soak_id"] in seen
            r.detail += " (reached the upstream)" if reached else " (never reached the upstream)"
        sent = time.strftime("%H:%M:%S", time.localtime(r.at)) + f"{r.at % 1:.3f}"[1:]
        print(
            f"  sent {sent} {r.plan.model}{' stream' if r.plan.stream else ''} "
            f"mode={r.plan.mode}: {r.kind} {r.detail} ({r.seconds:.2f} s)"
        )
    if lost:
        failures.append(f"{len(lost)} requests lost")
    complete = [r.seconds for r in results if r.outcome == "complete"]
    if complete:
        print(
            f"latency complete  p50 {pct(complete, 0.5) * 1000:.0f} ms   p99 "
            f"{pct(complete, 0.99) * 1000:.0f} ms   max {max(complete) * 1000:.0f} ms   "
            f"mean {statistics.fmean(complete) * 1000:.0f} ms"
        )
    print(
        f"gateway RSS       start {start.rss_mb:.1f} MB   end {end.rss_mb:.1f} MB   "
        f"({end.rss_mb - start.rss_mb:+.1f} MB)"
    )
    print(
        f"gateway FDs       start {start.fds}   end {end.fds}   ({end.fds - start.fds:+d}; "
        f"allowed +{FD_MARGIN})"
    )
    print(
        f"gateway sockets   start {start.connections} ({start.states})   "
        f"end {end.connections} ({end.states})"
    )
    if end.fds - start.fds > FD_MARGIN:
        failures.append(f"gateway FDs grew by {end.fds - start.fds}")
    left_open = ups["opened"] - ups["closed"]
    ups.pop("seen_ids", None)
    print(
        f"upstream          requests {ups['requests']}   streams opened {ups['opened']}   "
        f"closed {ups['closed']}   left open {left_open}   cancelled by the fake's wrapper "
        f"after the gateway hung up {ups['disconnect_cancels']}"
    )
    if left_open:
        failures.append(f"{left_open} upstream requests left open")
    print(f"in-flight gauge   {gauge}")
    if gauge is None or gauge != 0:
        failures.append(f"gateway in-flight gauge is {gauge} after the run")
    print(f"gateway log       {len(log_errors)} ERROR/WARNING/Traceback lines")
    for line in log_errors[:5]:
        print(f"  {line[:200]}")
    if log_errors:
        failures.append(f"{len(log_errors)} error lines in the gateway log")
    if failures:
        print("\nFAIL: " + "; ".join(failures))
        return 1
    print("\nPASS: nothing lost, no FD growth, every upstream request closed")
    return 0


Figures = tuple[list[Result], float, int, Sample, Sample, dict[str, Any], float | None]


async def soak(args: Any, base: str, pid: int, upstream: str) -> Figures:
    plans = make_plans(args.requests, args.seed)
    warm = make_plans(args.warmup, args.seed + 1)
    warm = [p for p in warm if p.model not in ("hang", "stall") and p.mode == "normal"]
    deadline = args.upstream_timeout * 3
    url = f"{base}/v1/chat/completions"
    print(f"warm-up: {len(warm)} requests", flush=True)
    await run_load(url, warm, args.concurrency, 60, deadline)
    await asyncio.sleep(args.idle)
    await prime(base)
    await asyncio.sleep(0.5)
    start = sample(pid)
    print(
        f"start: RSS {start.rss_mb:.1f} MB, {start.fds} FDs; sending up to {len(plans)} "
        f"requests for up to {args.seconds:g} s at concurrency {args.concurrency}",
        flush=True,
    )
    LAG.clear()
    results, elapsed, skipped = await run_load(url, plans, args.concurrency, args.seconds, deadline)
    print(f"load done in {elapsed:.1f} s; idling {args.idle:g} s", flush=True)
    await asyncio.sleep(args.idle)
    await prime(base)
    await asyncio.sleep(0.5)
    end = sample(pid)
    ups = await fetch_json(f"{upstream}/_stats")
    gauge = await inflight(base)
    return results, elapsed, skipped, start, end, ups, gauge


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=120.0, help="stop sending after this")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--upstream-timeout", type=float, default=2.0)
    parser.add_argument("--breaker-cooldown", type=float, default=1.0)
    parser.add_argument("--warmup", type=int, default=96)
    parser.add_argument(
        "--idle",
        type=float,
        default=6.0,
        help="idle seconds before each measurement (> uvicorn's 5 s keep-alive)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nice", type=int, default=10, help="niceness increment for the run")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (config, logs)")
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    if args.nice:
        os.nice(args.nice)  # children inherit it

    tmp = Path(tempfile.mkdtemp(prefix="routellm-soak-"))
    logs = contextlib.ExitStack()

    def log_file(name: str) -> Any:
        return logs.enter_context((tmp / name).open("wb"))

    upstream_proc = gateway_proc = None
    python = sys.executable
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTELLM_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    try:
        t0 = time.monotonic()
        up_port = free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        upstream_proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--serve-upstream", str(up_port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file("upstream.log"),
        )
        checkpoint = tmp / "bert"
        subprocess.run(
            [
                python,
                "-c",
                "import sys; from classifier.synthetic import build_checkpoint; "
                "build_checkpoint(sys.argv[1], winning_label=2)",
                str(checkpoint),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=log_file("checkpoint.log"),
        )
        wait_http(f"{upstream}/_stats", upstream_proc, "the fake upstream", 30)
        config = tmp / "gateway.yaml"
        write_config(config, upstream)
        gw_port = free_port()
        base = f"http://127.0.0.1:{gw_port}"
        gw_env = {
            **env,
            "ROUTELLM_BERT_MODEL": str(checkpoint),
            "ROUTELLM_BERT_CACHE_DIR": str(tmp / "onnx"),
            "ROUTELLM_BERT_DEVICE": "cpu",
            "ROUTELLM_BERT_THREADS": "1",
            "ROUTELLM_UPSTREAM_TIMEOUT": f"{args.upstream_timeout:g}",
            "ROUTELLM_BREAKER_COOLDOWN": f"{args.breaker_cooldown:g}",
        }
        gw_bin = Path(python).parent / "routellm-gateway"
        gw_log = tmp / "gateway.log"
        gateway_proc = subprocess.Popen(
            [str(gw_bin), "--host", "127.0.0.1", "--port", str(gw_port), "--config", str(config)],
            cwd=ROOT,
            env=gw_env,
            stdout=log_file("gateway.log"),
            stderr=subprocess.STDOUT,
        )
        wait_http(f"{base}/health", gateway_proc, "the gateway", 120)
        print(
            f"gateway pid {gateway_proc.pid} on {base}, fake upstream on {upstream} "
            f"(ready in {time.monotonic() - t0:.1f} s)",
            flush=True,
        )
        figures = asyncio.run(soak(args, base, gateway_proc.pid, upstream))
        if gateway_proc.poll() is not None:
            print(f"the gateway exited with status {gateway_proc.returncode} during the run")
            return 1
        log_errors = [
            line
            for line in gw_log.read_text(errors="replace").splitlines()
            if " ERROR " in line or line.startswith(("ERROR", "Traceback", "WARNING"))
        ]
        results, elapsed, skipped, start, end, ups, gauge = figures
        code = report(results, elapsed, skipped, start, end, ups, gauge, log_errors, args)
        print(f"total wall time   {time.monotonic() - t0:.1f} s")
        return code
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"soak: could not start: {exc}", file=sys.stderr)
        for name in ("gateway.log", "upstream.log", "checkpoint.log"):
            path = tmp / name
            if path.exists():
                tail = path.read_text(errors="replace")[-2000:]
                print(f"--- {name} (tail)\n{tail}", file=sys.stderr)
        return 2
    finally:
        stop(gateway_proc)
        stop(upstream_proc)
        logs.close()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
