"""Fleet soak: two gateway replicas behind a balancer, through restarts and outages of everything.

    .venv/bin/python bench/fleet.py                 # ~150 s of load, under 4 minutes in all
    .venv/bin/python bench/fleet.py --seconds 60    # quicker (the events move closer together)

The run lowers its own priority (`os.nice(10)`, inherited by its children). What it runs, all on
127.0.0.1, every process in its own process group and all of it removed on exit, failure or
Ctrl-C included:

- a real `redis-server` (`tests.gateway.scripted.RedisServer`: `--save "" --appendonly no
  --dir <tmp>`); it is stopped only after a `SAVE`, so it reloads `dump.rdb` when started again;
- a throwaway PostgreSQL 15 cluster (`tests.gateway.postgres.Cluster`) and one fresh database,
  the `ROUTELLM_LEDGER` of both replicas, which are started at the same instant (both make the
  schema at once);
- two fake upstreams, A and B (`bench/soak.py --serve-upstream PORT`, i.e.
  `tests/gateway/fake_upstream.py`, whose behaviour is the model's name);
- two `routellm-gateway` replicas sharing a tiny generated classifier (LABEL_2 wins), Redis and
  the ledger. `router` maps LABEL_2 to `weak` on B; its fallback is on A, so routed requests
  fall back while B is down. Direct models on A: `status-500`, `slow-first`, `slow-stream`,
  `hang`; on B: `slow-b` (the slow stream, to be cut when B dies);
- a round-robin TCP balancer (asyncio, in this process): each client connection goes to the
  next replica, or to the other one when that connection is refused. Nothing already sent is
  retried; when both refuse, it answers 503 with `x-fleet-balancer: refused` ("refused").

The load: 16 workers for `--seconds`, one HTTP connection per request (so every request is
placed by the balancer, and no keep-alive race of the harness's own is counted), mixing routed
`router` chats streamed and not, multi-turn chats (2-3 turns resending the history; half with an
`x-routellm-conversation` header, half recognised by their first messages), `status-500`,
`slow-first`, `slow-stream`, `slow-b`, and `hang`. Events, spaced over the run and logged with
their times: a rolling restart (SIGTERM replica 1, wait for its exit and check status 0, start it
on the same port, wait for /health; then replica 2), Redis stopped for 5 s, PostgreSQL stopped
for 5 s (immediate, as a crash), upstream B killed for 5 s, replica 2 SIGKILLed and restarted.
At the end both replicas get SIGTERM (their ledgers flush) and their exit statuses are kept.

Each request ends as exactly one of

    answered  2xx with a whole body: non-stream a JSON chat.completion with choices; a stream
              whose every event is `data: <json>` and whose last is `data: [DONE]`
    clear     a 4xx/5xx whose body is JSON {"error": {...}} (the API's shape), or a stream whose
              last event is `data: {"error": ...}`: expected for the faulty models, for the
              requests a draining replica refuses (503 shutting_down) and for streams cut
    broken    anything else: reset after sending, a body that is not JSON, a stream ended
              without [DONE] or an error event, an empty 200, ... (samples are printed)
    hung      no answer within the client's deadline (upstream timeout + grace + 10 s)
    refused   the balancer found no replica accepting connections

Half of the `hang` requests have a 2 s client deadline, shorter than the gateway's 5 s upstream
timeout: they end "hung" on purpose (a client giving up) and are reported apart; the other half
must get the gateway's clear 504. Requests in flight on replica 2 when it is SIGKILLed cannot
be answered: broken ones on that replica spanning the kill are reported apart as expected.

Then the ledger (`routellm_decisions`) is read: rows, answered request ids found and missing
(expected: at most what the killed replica had not yet written, one batch per 0.25 s), duplicate
ids; and both replicas' logs are searched for "Exception in ASGI application", "IntegrityError"
and "Traceback". Exit status 0 when no request is broken (beyond the SIGKILL's) or hung (beyond
the deliberate ones) and no id is duplicated; 1 otherwise; 2 when the fleet could not start.
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
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
GATEWAY = ROOT / ".venv/bin/routellm-gateway"
UPSTREAM_TIMEOUT = 5.0
SHUTDOWN_GRACE = 3.0
CLIENT_DEADLINE = UPSTREAM_TIMEOUT + SHUTDOWN_GRACE + 10
HANG_DEADLINE = 2.0
"""The client deadline of the deliberate `hang` requests (below the upstream timeout)."""
OUTAGE = 5.0
KILL_WINDOW = 2.0
"""A broken request on replica 2 that was in flight at the SIGKILL and ended within this many
seconds after it is counted as cut by the kill."""
LOG_MARKERS = ("Exception in ASGI application", "IntegrityError", "Traceback")
OUTCOMES = ("answered", "clear", "broken", "hung", "refused")
REFUSED_BODY = json.dumps(
    {"error": {"message": "no replica", "type": "fleet", "param": None, "code": "refused"}}
).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- the processes


class Child:
    """One child process in its own process group, its output appended to `log`."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.command, self.env, self.log = name, command, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group (the cleanup, and the crash event)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float) -> int | str:
        """SIGTERM, then the exit status; 'timeout' (and SIGKILL) if it outlives `timeout`."""
        if self.proc is None:
            return "not running"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return "timeout"


async def wait_ok(url: str, child: Child, within: float) -> float:
    """Seconds until `url` answers 200; RuntimeError if `child` exits or `within` runs out."""
    import httpx

    started = time.monotonic()
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
        while time.monotonic() - started < within:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited before it served (see {child.log.name})")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return time.monotonic() - started
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{child.name} did not answer {url} within {within:.0f} s")


def redis_command(port: int, command: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(command + b"\r\n")
        return sock.recv(256).strip()


def write_config(path: Path, url_a: str, url_b: str) -> None:
    import yaml

    models: dict[str, Any] = {
        "strong": {"upstream": "a", "model": "ok:strong"},
        "weak": {"upstream": "b", "model": "ok:weak"},
        "fallback": {"upstream": "a", "model": "ok:fallback"},
        "slow-b": {"upstream": "b", "model": "slow-stream"},
    }
    for behaviour in ("status-500", "slow-first", "slow-stream", "hang"):
        models[behaviour] = {"upstream": "a", "model": behaviour}
    doc = {
        "upstreams": {"a": {"base_url": f"{url_a}/v1"}, "b": {"base_url": f"{url_b}/v1"}},
        "models": models,
        "routing": {
            "mapping": {"LABEL_0": "strong", "LABEL_1": "weak", "LABEL_2": "weak"},
            "threshold": 0.3,
            "strong": "strong",
            "weak": "weak",
            "fallback": "fallback",
        },
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


# ---------------------------------------------------------------- the balancer


class Balancer:
    """Round-robin TCP proxy: a refused connection goes to the other replica; nothing else is
    retried. `placed` maps a client's local port to the replica (1, 2) that got it."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.turn = 0
        self.refused = 0
        self.retried = 0
        self.connections = 0
        self.placed: dict[int, int] = {}
        self.ends: dict[int, str] = {}
        """How each client port's exchange ended, seen from the balancer."""
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        client_port = writer.get_extra_info("peername")[1]
        first, self.turn = self.turn, (self.turn + 1) % len(self.ports)
        backend = None
        for k in range(len(self.ports)):
            index = (first + k) % len(self.ports)
            try:
                backend = await asyncio.open_connection("127.0.0.1", self.ports[index])
            except ConnectionRefusedError:
                self.retried += k == 0
                continue
            self.placed[client_port] = index + 1
            break
        try:
            if backend is None:
                self.refused += 1
                await self.refuse(reader, writer)
                return
            up_reader, up_writer = backend
            pipes = [
                asyncio.ensure_future(pipe(reader, up_writer)),
                asyncio.ensure_future(pipe(up_reader, writer)),
            ]
            # HTTP here never half-closes: the first side to end ends the exchange.
            _, pending = await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            sent, received = (t.result() if t.done() else None for t in pipes)
            if received is not None:  # set before the client sees the end
                self.ends[client_port] = f"replica sent {received[0]} B, then {received[1]}"
            elif sent is not None:
                self.ends[client_port] = f"client ended first ({sent[1]})"
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            up_writer.close()
        finally:
            writer.close()

    @staticmethod
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read the request (so closing does not reset it), answer 503 refused."""
        with contextlib.suppress(Exception):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await asyncio.wait_for(reader.readexactly(length), 5)
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                b"x-fleet-balancer: refused\r\nconnection: close\r\n"
                + f"content-length: {len(REFUSED_BODY)}\r\n\r\n".encode()
                + REFUSED_BODY
            )
            await writer.drain()


async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> tuple[int, str]:
    """Copy until the source ends: (bytes copied, how it ended: EOF or the error's name)."""
    copied = 0
    try:
        while data := await source.read(65536):
            copied += len(data)
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError) as exc:
        return copied, type(exc).__name__
    return copied, "EOF"


# ---------------------------------------------------------------- requests and outcomes


@dataclass
class Result:
    kind: str
    stream: bool
    outcome: str
    detail: str
    sent: float
    ended: float
    status: int = 0
    request_id: str | None = None
    replica: int | None = None
    deliberate: bool = False
    sample: str = ""
    reason: str | None = None
    content: str = ""
    """The assistant's text (multi-turn chats resend it)."""
    killed: bool = False
    """Broken because it was in flight on replica 2 when that was SIGKILLed."""


def judge_json(status: int, raw: bytes) -> tuple[str, str, str]:
    """(outcome, detail, assistant text) of a non-streamed answer."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return "broken", f"HTTP {status}, body not JSON", ""
    if not isinstance(doc, dict):
        return "broken", f"HTTP {status}, JSON not an object", ""
    if 200 <= status < 300:
        choices = doc.get("choices")
        if doc.get("object") != "chat.completion" or not isinstance(choices, list) or not choices:
            return "broken", f"HTTP {status}, not a chat.completion", ""
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        text = message.get("content") if isinstance(message, dict) else None
        return "answered", "json", text if isinstance(text, str) else ""
    if 400 <= status < 600 and isinstance(doc.get("error"), dict):
        return "clear", f"HTTP {status} {doc['error'].get('code')}", ""
    return "broken", f"HTTP {status}, no error object", ""


def judge_stream(status: int, raw: bytes) -> tuple[str, str, str]:
    """(outcome, detail, assistant text) of an event stream."""
    if not 200 <= status < 300:
        return "broken", f"event stream with HTTP {status}", ""
    if not raw:
        return "broken", "empty stream", ""
    events = [e for e in raw.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]
    text = []
    for i, event in enumerate(events):
        if not event.startswith(b"data: "):
            return "broken", "event without data:", ""
        data = event[6:]
        last = i == len(events) - 1
        if data == b"[DONE]":
            if not last:
                return "broken", "events after [DONE]", ""
            return "answered", "stream [DONE]", "".join(text)
        try:
            chunk = json.loads(data)
        except ValueError:
            return "broken", "event not JSON (truncated?)", ""
        if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
            if not last:
                return "broken", "events after an error event", ""
            return "clear", f"stream error {chunk['error'].get('code')}", ""
        for choice in chunk.get("choices") or [] if isinstance(chunk, dict) else []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                text.append(delta["content"])
    return "broken", "stream ended without [DONE] or an error event", ""


class Load:
    """The clients: `workers` loops of requests through the balancer until `stop` is set."""

    def __init__(self, url: str, balancer: Balancer, t0: float, seed: int) -> None:
        self.url = url
        self.balancer = balancer
        self.t0 = t0
        self.rng = random.Random(seed)  # a reproducible mix, not a secret
        self.results: list[Result] = []
        self.stop = asyncio.Event()
        self.chats = 0
        self.lag: list[float] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def request(
        self,
        client: Any,
        kind: str,
        messages: list[dict[str, str]],
        *,
        model: str,
        stream: bool,
        deadline: float = CLIENT_DEADLINE,
        headers: dict[str, str] | None = None,
    ) -> Result:
        import httpx

        body = {"model": model, "messages": messages, "stream": stream}
        port: list[int] = []

        async def trace(name: str, info: dict[str, Any]) -> None:
            if name == "connection.connect_tcp.complete" and info.get("return_value"):
                port.append(info["return_value"].get_extra_info("socket").getsockname()[1])

        sent = self.now()
        status, raw, resp_headers = 0, b"", httpx.Headers()
        outcome = detail = text = ""
        try:
            async with asyncio.timeout(deadline):
                request = client.build_request(
                    "POST",
                    self.url,
                    json=body,
                    headers={"connection": "close", **(headers or {})},
                    extensions={"trace": trace},
                )
                response = await client.send(request, stream=True)
                try:
                    status, resp_headers = response.status_code, response.headers
                    async for chunk in response.aiter_raw():
                        raw += chunk
                finally:
                    await response.aclose()
        except TimeoutError:
            outcome, detail = "hung", f"no answer in {deadline:g} s (HTTP {status or '-'})"
        except httpx.HTTPError as exc:
            outcome, detail = "broken", f"transport {type(exc).__name__}: {exc}"[:160]
        if not outcome:
            if resp_headers.get("x-fleet-balancer") == "refused":
                outcome, detail = "refused", "no replica"
            elif resp_headers.get("content-type", "").startswith("text/event-stream"):
                outcome, detail, text = judge_stream(status, raw)
            elif not raw:
                outcome, detail = "broken", f"HTTP {status} with an empty body"
            else:
                outcome, detail, text = judge_json(status, raw)
        result = Result(
            kind,
            stream,
            outcome,
            detail,
            sent,
            self.now(),
            status,
            resp_headers.get("x-routellm-request-id"),
            self.balancer.placed.get(port[0]) if port else None,
            deliberate=outcome == "hung" and deadline < CLIENT_DEADLINE,
            sample=f"{raw[-160:]!r}; balancer: {self.balancer.ends.get(port[0], '?')}"
            if outcome == "broken" and port
            else "",
            reason=resp_headers.get("x-routellm-reason"),
            content=text,
        )
        self.results.append(result)
        return result

    async def chat(self, client: Any) -> None:
        """2-3 turns of one conversation, resending the history; stops at a turn not answered."""
        self.chats += 1
        n = self.chats
        headers = {"x-routellm-conversation": f"fleet-chat-{n}"} if n % 2 else {}
        messages = [
            {"role": "system", "content": f"You are a fleet test, chat {n}."},
            {"role": "user", "content": f"Chat {n}: explain rolling restarts."},
        ]
        for turn in range(self.rng.choice((2, 3))):
            if turn:
                messages.append({"role": "user", "content": f"And turn {turn + 1}, briefly?"})
            result = await self.request(
                client,
                "chat turn",
                messages,
                model="router",
                stream=self.rng.random() < 0.5,
                headers=headers,
            )
            if result.outcome != "answered":
                return
            messages.append({"role": "assistant", "content": result.content or "(empty)"})

    async def one(self, client: Any) -> None:
        r = self.rng.random()
        text = [{"role": "user", "content": f"Question {self.rng.randrange(10**6)}: why?"}]
        stream = self.rng.random() < 0.5
        if r < 0.28:
            await self.request(client, "router", text, model="router", stream=False)
        elif r < 0.56:
            await self.request(client, "router", text, model="router", stream=True)
        elif r < 0.72:
            await self.chat(client)
        elif r < 0.78:
            await self.request(client, "status-500", text, model="status-500", stream=stream)
        elif r < 0.85:
            await self.request(client, "slow-first", text, model="slow-first", stream=stream)
        elif r < 0.90:
            await self.request(client, "slow-stream", text, model="slow-stream", stream=True)
        elif r < 0.95:
            await self.request(client, "slow-b", text, model="slow-b", stream=True)
        elif r < 0.975:
            await self.request(client, "hang", text, model="hang", stream=stream)
        else:
            await self.request(
                client, "hang 2s", text, model="hang", stream=stream, deadline=HANG_DEADLINE
            )

    async def run(self, workers: int) -> None:
        import httpx

        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        timeout = httpx.Timeout(None, connect=5)

        async def worker() -> None:
            async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as c:
                while not self.stop.is_set():
                    await self.one(c)

        async def watch_lag() -> None:
            while True:
                before = time.perf_counter()
                await asyncio.sleep(0.1)
                self.lag.append(time.perf_counter() - before - 0.1)

        lag = asyncio.ensure_future(watch_lag())
        try:
            await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            lag.cancel()


# ---------------------------------------------------------------- the fleet and its events


@dataclass
class Fleet:
    tmp: Path
    t0: float
    replicas: list[Child] = field(default_factory=list)
    replica_ports: list[int] = field(default_factory=list)
    upstreams: list[Child] = field(default_factory=list)
    upstream_ports: list[int] = field(default_factory=list)
    redis: Any = None
    pg: Any = None
    events: list[tuple[float, float, str]] = field(default_factory=list)
    exits: list[tuple[str, int | str]] = field(default_factory=list)
    killed: tuple[float, float] | None = None
    """When replica 2's SIGKILL was sent, and when it was seen dead."""
    notes: list[str] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def clock(self, at: float) -> str:
        """Wall-clock time of `at` (seconds since the start), as the replicas' logs write it."""
        wall = time.time() - self.now() + at
        return time.strftime("%H:%M:%S", time.localtime(wall)) + f"{wall % 1:.3f}"[1:]

    def log_near(self, r: Result, margin: float = 0.5) -> list[str]:
        """The lines of `r`'s replica's log (not the per-request ones) written while it ran."""
        if r.replica is None:
            return []
        start = time.time() - self.now() + r.sent - margin
        end = time.time() - self.now() + r.ended + margin
        near = []
        for line in self.replicas[r.replica - 1].log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                if start <= at <= end and " event=chat " not in line:
                    near.append(line[11:160])
        return near

    async def event(self, name: str, action: Callable[[], Awaitable[None]]) -> None:
        start = self.now()
        print(f"  [{start:6.1f} s] {name} ...", flush=True)
        try:
            await action()
        except Exception as exc:  # an event that fails is a finding, not the end of the run
            self.notes.append(f"event {name!r} failed: {type(exc).__name__}: {exc}")
            print(f"  [{self.now():6.1f} s] {name} FAILED: {exc}", flush=True)
        end = self.now()
        self.events.append((start, end, name))
        print(f"  [{end:6.1f} s] {name} done ({end - start:.1f} s)", flush=True)

    async def healthy(self, i: int) -> float:
        url = f"http://127.0.0.1:{self.replica_ports[i]}/health"
        return await wait_ok(url, self.replicas[i], 120)

    async def restart_replica(self, i: int) -> None:
        code = await asyncio.to_thread(self.replicas[i].terminate, 30)
        self.exits.append((f"replica {i + 1} SIGTERM (rolling restart)", code))
        self.replicas[i].start()
        took = await self.healthy(i)
        print(f"           replica {i + 1} exited {code}; healthy again after {took:.1f} s")

    async def rolling_restart(self) -> None:
        for i in range(len(self.replicas)):
            await self.restart_replica(i)

    async def redis_outage(self) -> None:
        port = self.redis.port
        keys = await asyncio.to_thread(redis_command, port, b"DBSIZE")
        saved = await asyncio.to_thread(redis_command, port, b"SAVE")
        await asyncio.to_thread(self.redis.stop)
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(self.redis.start)
        again = await asyncio.to_thread(redis_command, port, b"DBSIZE")
        self.notes.append(
            f"redis: {keys.decode().lstrip(':')} keys before the stop (SAVE {saved.decode()}), "
            f"{again.decode().lstrip(':')} after the restart"
        )

    async def postgres_outage(self) -> None:
        await asyncio.to_thread(self.pg.stop)
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(self.pg.start)

    async def upstream_b_outage(self) -> None:
        await asyncio.to_thread(self.upstreams[1].kill)
        await asyncio.sleep(OUTAGE)
        self.upstreams[1].start()
        await wait_ok(f"http://127.0.0.1:{self.upstream_ports[1]}/_stats", self.upstreams[1], 30)

    async def kill_replica_2(self) -> None:
        sent = self.now()
        replica = self.replicas[1]
        await asyncio.to_thread(replica.kill)
        self.killed = (sent, self.now())
        self.exits.append(("replica 2 SIGKILL", replica.proc.returncode if replica.proc else "-"))
        self.replicas[1].start()
        took = await self.healthy(1)
        print(f"           replica 2 healthy again after {took:.1f} s")


async def drive(fleet: Fleet, load: Load, seconds: float) -> None:
    """The load for `seconds` with the events at fixed shares of it, one after another."""
    schedule: list[tuple[float, str, Callable[[], Awaitable[None]]]] = [
        (0.06, "rolling restart", fleet.rolling_restart),
        (0.38, "Redis stopped 5 s", fleet.redis_outage),
        (0.50, "PostgreSQL stopped 5 s", fleet.postgres_outage),
        (0.62, "upstream B killed 5 s", fleet.upstream_b_outage),
        (0.74, "replica 2 SIGKILL", fleet.kill_replica_2),
    ]
    begin = fleet.now()
    clients = asyncio.ensure_future(load.run(16))
    try:
        for share, name, action in schedule:
            await asyncio.sleep(max(0.0, begin + share * seconds - fleet.now()))
            await fleet.event(name, action)
        await asyncio.sleep(max(0.0, begin + seconds - fleet.now()))
    finally:
        load.stop.set()
        print(f"  [{fleet.now():6.1f} s] load stopped; waiting for requests in flight", flush=True)
        await clients


# ---------------------------------------------------------------- the report


def read_ledger(url: str) -> tuple[int, dict[str, int], int]:
    """(rows, {id: status}, duplicate ids) of `routellm_decisions`."""
    import psycopg

    with psycopg.connect(url, connect_timeout=10) as conn:
        rows = conn.execute("SELECT id, status FROM routellm_decisions").fetchall()
        (dups,) = conn.execute(
            "SELECT count(*) FROM (SELECT id FROM routellm_decisions GROUP BY id "
            "HAVING count(*) > 1) AS d"
        ).fetchone() or (0,)
    return len(rows), {rid: status for rid, status in rows}, int(dups)


def cpu_line() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    model = info.get("Model name", "?").strip()
    flags = set(info.get("Flags", "").split())
    have = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni") if f in flags]
    amx = sorted(f for f in flags if f.startswith("amx"))
    avx512 = "yes" if any(f.startswith("avx512") for f in flags) else "no"
    return (
        f"CPU: {model}, {os.cpu_count()} cores; flags {' '.join(have) or '-'}; "
        f"AVX-512 {avx512}; AMX {' '.join(amx) if amx else 'no'}"
    )


def during(fleet: Fleet, r: Result) -> str:
    names = [name for start, end, name in fleet.events if r.sent <= end and r.ended >= start]
    return ", ".join(names) or "no event"


def report(fleet: Fleet, load: Load, balancer: Balancer, ledger_url: str, wall: float) -> int:
    results = load.results
    kill_sent, dead = fleet.killed or (-1.0, -1.0)
    for r in results:
        r.killed = (
            r.outcome == "broken"
            and r.replica == 2
            and r.sent <= dead
            and kill_sent <= r.ended <= dead + KILL_WINDOW
        )
    count = Counter(r.outcome for r in results)
    broken = [r for r in results if r.outcome == "broken" and not r.killed]
    killed = [r for r in results if r.killed]
    hung = [r for r in results if r.outcome == "hung" and not r.deliberate]
    deliberate = [r for r in results if r.outcome == "hung" and r.deliberate]
    answered = {r.request_id: r for r in results if r.outcome == "answered" and r.request_id}
    no_id = sum(1 for r in results if r.outcome == "answered" and not r.request_id)

    rows, ledger, dups = 0, {}, -1
    try:
        rows, ledger, dups = read_ledger(ledger_url)
    except Exception as exc:  # reported: the check then fails
        fleet.notes.append(f"ledger query failed: {type(exc).__name__}: {exc}")
    present = [rid for rid in answered if rid in ledger]
    missing = [answered[rid] for rid in answered if rid not in ledger]
    # The killed replica's unwritten rows: answers it gave in the second before it died (one
    # 0.25 s batch, plus the client's own lag in seeing the answer end).
    late = [r for r in missing if r.replica == 2 and kill_sent - 1.0 <= r.ended <= dead + 1.0]
    not_ok = sum(1 for rid in present if ledger[rid] // 100 != 2)

    print("\n=== routellm-gateway fleet soak ===")
    print(cpu_line())
    print("\nevents (seconds since the fleet started; wall clock):")
    for start, end, name in fleet.events:
        print(f"  {start:6.1f} - {end:6.1f}  {fleet.clock(start)} - {fleet.clock(end)}  {name}")
    print("\nby request kind: answered / clear / broken / hung / refused")
    kinds: dict[str, Counter[str]] = {}
    for r in results:
        kinds.setdefault(f"{r.kind}{' stream' if r.stream else ''}", Counter())[r.outcome] += 1
    for key in sorted(kinds):
        c = kinds[key]
        print(f"  {key:<20}" + "".join(f"{c[o]:>8}" for o in OUTCOMES))
    print("\nclear errors by kind and code:")
    for (kind, detail), n in sorted(
        Counter((r.kind, r.detail) for r in results if r.outcome == "clear").items()
    ):
        print(f"  {kind:<14} {detail:<40} {n:>6}")
    reasons = Counter(r.reason for r in results if r.outcome == "answered" and r.reason)
    print(
        "routed answers by x-routellm-reason: " + ", ".join(f"{k} {v}" for k, v in reasons.items())
    )
    for title, group in (
        ("broken", broken),
        ("broken: in flight on replica 2 at its SIGKILL (expected)", killed),
        ("hung", hung),
    ):
        if not group:
            continue
        print(f"\n{title}: {len(group)}")
        for (kind, detail), n in Counter((r.kind, r.detail) for r in group).most_common():
            print(f"  x{n} {kind}: {detail}")
            # every unexpected one (up to 3 of a kind), one sample of the expected ones
            same = [x for x in group if (x.kind, x.detail) == (kind, detail)]
            for r in same[: 1 if group is killed else 3]:
                print(
                    f"      {'stream' if r.stream else 'non-stream'} sent {r.sent:.2f} s "
                    f"({fleet.clock(r.sent)}), ended {r.ended:.2f} s, replica {r.replica}, "
                    f"HTTP {r.status or '-'}, during {during(fleet, r)}; tail {r.sample or '-'}"
                )
                if group is broken:
                    for line in fleet.log_near(r):
                        print(f"        replica {r.replica} log: {line}")
    print("\nledger (PostgreSQL routellm_decisions):")
    print(f"  answered ids missing: {len(missing)}, of them answered by replica 2 in the last")
    print(f"  second before its SIGKILL: {len(late)}; answered ids without a 2xx row: {not_ok}")
    for r in [m for m in missing if m not in late][:5]:
        print(f"    unexpected: {r.request_id} {r.kind} ended {r.ended:.1f} s replica {r.replica}")
    if no_id:
        print(f"  answered without x-routellm-request-id: {no_id}")
    others = [r for r in results if r.outcome != "answered"]
    with_id = [r for r in others if r.request_id]
    print(
        f"  not answered: {len(others)}; {len(with_id)} carry a request id, "
        f"{sum(r.request_id in ledger for r in with_id)} of them in the ledger; without an id:"
    )
    for (outcome, detail), n in Counter(
        (r.outcome, r.detail[:60]) for r in others if not r.request_id
    ).most_common(6):
        print(f"    x{n} {outcome} {detail}")
    print("\nreplica logs:")
    found: Counter[str] = Counter()
    for replica in fleet.replicas:
        text = replica.log.read_text(errors="replace")
        found.update({m: text.count(m) for m in LOG_MARKERS})
        marks = ", ".join(f'"{m}" {text.count(m)}' for m in LOG_MARKERS)
        errors = Counter(
            line.split(" ", 3)[-1][:90]
            for line in text.splitlines()
            if " ERROR " in line or " WARNING " in line
        )
        print(f"  {replica.name}: {marks}")
        for line, n in errors.most_common(6):
            print(f"      x{n} {line}")
    for note in fleet.notes:
        print(f"note: {note}")
    lag = sorted(load.lag) or [0.0]
    print(
        f"client loop lag p50 {lag[len(lag) // 2] * 1000:.0f} ms, max {lag[-1] * 1000:.0f} ms; "
        f"balancer: {balancer.connections} connections, {balancer.retried} retried on the other "
        "replica after a refusal"
    )

    table = [
        ("requests", len(results)),
        ("answered", count["answered"]),
        ("clear errors", count["clear"]),
        ("broken", f"{len(broken)} (+{len(killed)} cut by the SIGKILL)"),
        ("hung", f"{len(hung)} (+{len(deliberate)} deliberate 2 s hang deadlines)"),
        ("refused", count["refused"]),
        ("ledger rows", rows),
        ("answered in ledger", len(present)),
        ("answered missing", f"{len(missing)} ({len(late)} in the killed replica's last second)"),
        ("duplicate ids", dups),
        ("replica logs", ", ".join(f'"{m}" {found[m]}' for m in LOG_MARKERS)),
        ("exit codes", "; ".join(f"{name}: {code}" for name, code in fleet.exits)),
        ("duration", f"{wall:.1f} s wall"),
    ]
    print("\n| figure | value |\n|---|---|")
    for name, value in table:
        print(f"| {name} | {value} |")
    failures = []
    if broken:
        failures.append(f"{len(broken)} broken")
    if hung:
        failures.append(f"{len(hung)} hung")
    if dups != 0:
        failures.append(f"duplicate ids: {dups}")
    bad_exits = [n for n, c in fleet.exits if "SIGTERM" in n and c != 0]
    if bad_exits:
        failures.append(f"non-zero exits: {', '.join(bad_exits)}")
    if failures:
        print("\nFAIL: " + "; ".join(failures))
        return 1
    print("\nPASS: nothing broken or hung, no duplicate ledger ids")
    return 0


# ---------------------------------------------------------------- main


def build_checkpoint(path: Path, env: dict[str, str], log: Path) -> None:
    code = (
        "import sys; from classifier.synthetic import build_checkpoint; "
        "build_checkpoint(sys.argv[1], winning_label=2)"
    )
    with log.open("ab") as out:
        subprocess.run(
            [PYTHON, "-c", code, str(path)],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        )


async def run(args: argparse.Namespace, fleet: Fleet, env: dict[str, str]) -> int:
    from tests.gateway.postgres import Cluster
    from tests.gateway.scripted import RedisServer

    tmp = fleet.tmp
    for name in ("a", "b"):
        port = free_port()
        command = [PYTHON, str(ROOT / "bench/soak.py"), "--serve-upstream", str(port)]
        fleet.upstreams.append(
            Child(f"upstream {name}", command, env, tmp / f"upstream-{name}.log")
        )
        fleet.upstream_ports.append(port)
        fleet.upstreams[-1].start()
    checkpoint = asyncio.to_thread(build_checkpoint, tmp / "bert", env, tmp / "checkpoint.log")
    fleet.pg = await asyncio.to_thread(Cluster)
    await asyncio.to_thread(fleet.pg.start)
    ledger_url = await asyncio.to_thread(fleet.pg.new_database)
    fleet.redis = RedisServer(tmp / "redis")
    (tmp / "redis").mkdir()
    await asyncio.to_thread(fleet.redis.start)
    await checkpoint
    for child, port in zip(fleet.upstreams, fleet.upstream_ports, strict=True):
        await wait_ok(f"http://127.0.0.1:{port}/_stats", child, 30)
    urls = [f"http://127.0.0.1:{p}" for p in fleet.upstream_ports]
    write_config(tmp / "gateway.yaml", *urls)
    gw_env = {
        **env,
        "ROUTELLM_REDIS_URL": fleet.redis.url,
        "ROUTELLM_LEDGER": ledger_url,
        "ROUTELLM_BERT_MODEL": str(tmp / "bert"),
        "ROUTELLM_BERT_CACHE_DIR": str(tmp / "onnx"),
        "ROUTELLM_BERT_DEVICE": "cpu",
        "ROUTELLM_BERT_THREADS": "1",
        "ROUTELLM_UPSTREAM_TIMEOUT": f"{UPSTREAM_TIMEOUT:g}",
        "ROUTELLM_SHUTDOWN_GRACE": f"{SHUTDOWN_GRACE:g}",
        "ROUTELLM_BREAKER_COOLDOWN": "1",
    }
    for i in (1, 2):
        port = free_port()
        command = [str(GATEWAY), "--host", "127.0.0.1", "--port", str(port)]
        command += ["--config", str(tmp / "gateway.yaml")]
        fleet.replicas.append(Child(f"replica {i}", command, gw_env, tmp / f"replica-{i}.log"))
        fleet.replica_ports.append(port)
    for replica in fleet.replicas:  # the same instant: both make the ledger's schema at once
        replica.start()
    ready = await asyncio.gather(fleet.healthy(0), fleet.healthy(1))
    print(
        f"fleet ready at {fleet.now():.1f} s (replicas healthy after "
        f"{ready[0]:.1f} / {ready[1]:.1f} s); load for {args.seconds:g} s",
        flush=True,
    )

    balancer = Balancer(fleet.replica_ports)
    port = await balancer.start()
    load = Load(f"http://127.0.0.1:{port}/v1/chat/completions", balancer, fleet.t0, args.seed)
    try:
        await drive(fleet, load, args.seconds)
    finally:
        await balancer.aclose()
    print(f"  [{fleet.now():6.1f} s] SIGTERM to both replicas", flush=True)
    codes = await asyncio.gather(*(asyncio.to_thread(r.terminate, 30) for r in fleet.replicas))
    for replica, code in zip(fleet.replicas, codes, strict=True):
        fleet.exits.append((f"{replica.name} SIGTERM (end)", code))
    return report(fleet, load, balancer, ledger_url, fleet.now())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=150.0, help="seconds of load")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, config)")
    args = parser.parse_args(argv)
    os.nice(10)  # children inherit it
    # A SIGTERM to this script unwinds like Ctrl-C, so the finally below still cleans up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="routellm-fleet-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTELLM_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    fleet = Fleet(tmp, time.monotonic())
    try:
        return asyncio.run(run(args, fleet, env))
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"fleet: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        for log in sorted(tmp.glob("*.log")):
            tail = log.read_text(errors="replace")[-1500:]
            print(f"--- {log.name} (tail)\n{tail}", file=sys.stderr)
        return 2
    finally:
        for child in [*fleet.replicas, *fleet.upstreams]:
            child.kill()
        if fleet.redis is not None:
            with contextlib.suppress(Exception):
                fleet.redis.stop()
        if fleet.pg is not None:
            with contextlib.suppress(Exception):
                fleet.pg.stop()
            fleet.pg.remove()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
