"""What slow clients cost the others: `--slow` connections each send a request whose body
arrives one byte a second, while one ordinary client measures its latency on `/v1/route`.

    .venv/bin/python bench/slow_clients.py [--slow 200] [--seconds 20]

The gateway is the real `routellm-gateway` process on 127.0.0.1 (in-process tiny classifier);
the ordinary client routes "hello" through the classifier. Prints the ordinary client's latency
alone, then with the slow clients attached, and how many slow bodies the gateway was still
reading at the end (uvicorn sets no deadline on reading a body).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.soak import free_port, stop, wait_http  # noqa: E402
from classifier.synthetic import build_checkpoint  # noqa: E402

BODY = b'{"model": "router", "messages": [{"role": "user", "content": "hello from a slow client"}]}'


async def ordinary(url: str, seconds: float) -> list[float]:
    """Milliseconds per sequential /v1/route request, for `seconds`."""
    latencies = []
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=30) as client:
        i = 0
        while time.monotonic() < deadline:
            body = {"model": "router", "messages": [{"role": "user", "content": f"hello {i}"}]}
            started = time.perf_counter()
            response = await client.post(f"{url}/v1/route", json=body)
            response.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            i += 1
            await asyncio.sleep(0.05)
    return latencies


async def slow_client(port: int, seconds: float, answered: list[int]) -> None:
    """One connection: headers at once, then the body one byte a second until `seconds`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /v1/route HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(BODY)}\r\n\r\n"
    )
    writer.write(head.encode())
    deadline = time.monotonic() + seconds
    try:
        for byte in BODY:
            if time.monotonic() > deadline or reader.at_eof():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1.0)
        if reader.at_eof() or (await _answered(reader)):
            answered.append(1)
    except (ConnectionError, OSError):
        answered.append(1)  # the gateway closed the connection
    finally:
        writer.close()


async def _answered(reader: asyncio.StreamReader) -> bool:
    try:
        return bool(await asyncio.wait_for(reader.read(1), timeout=0.01))
    except TimeoutError:
        return False


def report(name: str, latencies: list[float]) -> None:
    q = statistics.quantiles(latencies, n=100)
    print(f"{name:32s} n={len(latencies):4d}  p50 {q[49]:7.1f} ms  p99 {q[98]:7.1f} ms  "
          f"max {max(latencies):7.1f} ms")  # fmt: skip


async def run(url: str, port: int, slow: int, seconds: float) -> None:
    report("ordinary client alone", await ordinary(url, min(seconds, 10.0)))
    answered: list[int] = []
    tasks = [asyncio.ensure_future(slow_client(port, seconds, answered)) for _ in range(slow)]
    await asyncio.sleep(1.0)  # all connected
    report(f"ordinary client with {slow} slow", await ordinary(url, seconds - 2.0))
    await asyncio.gather(*tasks)
    print(f"slow bodies the gateway cut short before {seconds:g} s: {len(answered)} of {slow}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        checkpoint = build_checkpoint(tmp / "bert", winning_label=2)
        port = free_port()
        env = {
            **os.environ,
            "ROUTELLM_BERT_MODEL": str(checkpoint),
            "ROUTELLM_BERT_CACHE_DIR": str(tmp / "onnx"),
            "ROUTELLM_UPSTREAM_BASE_URL": "http://127.0.0.1:9/v1",
            "ROUTELLM_STRONG_MODEL": "strong",
            "ROUTELLM_WEAK_MODEL": "weak",
            "ROUTELLM_FALLBACK_MODEL": "weak",
            "ROUTELLM_BERT_CACHE_SIZE": "0",
        }
        gateway = subprocess.Popen(
            [str(ROOT / ".venv/bin/routellm-gateway"), "--port", str(port)],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/health", gateway, "gateway", 300)
            asyncio.run(run(url, port, args.slow, args.seconds))
        finally:
            stop(gateway)


if __name__ == "__main__":
    main()
