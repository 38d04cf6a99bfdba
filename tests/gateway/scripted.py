"""A classifier whose answer each test writes into the text, and a real `redis-server`."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from classifier.base import Scores

LABELS = ("LABEL_0", "LABEL_1", "LABEL_2")
WIN_RATE = re.compile(r"p=(?P<p>[01](?:\.\d+)?)")


def scripted_scores(text: str) -> Scores:
    """P(LABEL_0) is the `p=0.83` written in the text (0.5 without one); the rest is split so
    that LABEL_0 is the top label exactly when p > 1/3."""
    found = WIN_RATE.search(text)
    p = float(found["p"]) if found else 0.5
    return Scores(LABELS, (p, (1 - p) * 0.6, (1 - p) * 0.4))


class ScriptedClassifier:
    """A `Classifier` answering `scripted_scores`; `history` holds every text it was given."""

    name = "scripted"

    def __init__(self) -> None:
        self.history: list[str] = []

    async def classify(self, texts: Sequence[str]) -> list[Scores]:
        self.history += texts
        return [scripted_scores(t) for t in texts]

    async def health(self) -> dict[str, object]:
        return {"status": "ok", "model": self.name}

    async def aclose(self) -> None:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """Debian's `redis-server` on a loopback port, without persistence; can be stopped and
    started again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
