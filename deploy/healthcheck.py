"""The image's HEALTHCHECK: GET /health on the address the container's server actually serves.

A container started with other flags (`routellm-gateway --port 7000`, `routellm-classifier`) has
its server elsewhere than the Dockerfile's CMD, so the address is read from the server's own
command line (`/proc/<pid>/cmdline`: PID 1, or the first of our servers found), with each
program's default port where no `--port` is given. Exit 0 when /health answers 200, 1 otherwise
(503 while the gateway drains). Standard library only: the image has no curl.

    python /usr/local/bin/routellm-healthcheck
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

DEFAULT_PORTS = {"routellm-gateway": 6060, "routellm-classifier": 8800, "uvicorn": 8000}
"""The servers this image runs and the port each listens on without `--port`."""
ALL_INTERFACES = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104  (what we probe, not what we bind)


def served_address(argv: Sequence[str]) -> tuple[str, int] | None:
    """(host, port) that the command line `argv` serves on, or None when it is not our server
    (a shell, `routellm-gateway calibrate`, ...)."""
    programs = [Path(arg).name for arg in argv[:3]]  # python /usr/local/bin/<program> ...
    index = next((i for i, name in enumerate(programs) if name in DEFAULT_PORTS), None)
    if index is None:
        return None
    program = programs[index]
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--host", default="127.0.0.1")
    flags.add_argument("--port", type=int, default=DEFAULT_PORTS[program])
    known, rest = flags.parse_known_args(argv[index + 1 :])
    if program == "routellm-gateway" and rest[:1] in (["calibrate"], ["evaluate"]):
        return None
    host = "127.0.0.1" if known.host in ALL_INTERFACES else known.host
    return host, known.port


def command_lines(proc: Path = Path("/proc")) -> Iterator[list[str]]:
    """PID 1's command line first, then every other process's, lowest PID first."""
    pids = (int(p.name) for p in proc.iterdir() if p.name.isdigit())
    for pid in sorted(pids, key=lambda p: (p != 1, p)):
        try:
            raw = (proc / str(pid) / "cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile, or not ours to read
        if raw:
            yield [a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")]


def main() -> int:
    address = next(filter(None, map(served_address, command_lines())), None)
    if address is None:
        print("routellm-healthcheck: no routellm-gateway or routellm-classifier server runs here")
        return 1
    host, port = address
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            print(f"{url}: {answer.status}")
            return 0
    except urllib.error.HTTPError as exc:
        print(f"{url}: {exc.code} {exc.read(200).decode(errors='replace')}")
    except OSError as exc:
        print(f"{url}: {exc}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
