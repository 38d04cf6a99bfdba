"""Run a server CLI (`python -m gateway`, `python -m classifier`) as a real process on loopback.

    with Process(["-m", "gateway", "--port", "0"], env) as proc:
        httpx.get(f"{proc.url}/health")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    proc.lines  # every line it wrote, stdout and stderr

The server binds port 0; its URL is read from uvicorn's start-up line, in either log format.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from types import TracebackType
from typing import IO

import httpx

STARTED = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")
START_SECONDS = 90


class Process:
    """A server subprocess whose output is collected line by line by reader threads."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args = [sys.executable, *args]
        self.env = {"PATH": os.environ.get("PATH", ""), **env}
        self.lines: list[str] = []
        """Every line written so far, stdout and stderr interleaved as read."""
        self.url = ""
        self._started = threading.Event()
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Process:
        self._proc = subprocess.Popen(
            self.args,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self._readers = [
            threading.Thread(target=self._read, args=(stream,), daemon=True)
            for stream in (self._proc.stdout, self._proc.stderr)
        ]
        for reader in self._readers:
            reader.start()
        deadline = time.monotonic() + START_SECONDS
        while not self._started.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._proc.kill()
                self.wait()
                raise RuntimeError("server did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        assert self._proc is not None
        if self._proc.poll() is None:
            self._proc.kill()
        self.wait()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            found = STARTED.search(line)
            if found and not self.url:
                self.url = found.group(1)
                self._started.set()

    def wait_until_healthy(self, seconds: float = START_SECONDS) -> bool:
        """Poll `GET /health` until it answers 200 (True) or `seconds` pass (False)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health").status_code == 200:
                    return True
            time.sleep(0.05)
        return False

    def signal(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        self._proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        """The exit status, once the process has ended and all its output has been read."""
        assert self._proc is not None
        status = self._proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()
        return status
