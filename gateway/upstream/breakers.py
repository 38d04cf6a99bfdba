"""Circuit breakers, per deployment and per host, so one failing model stays one failing model.

A *deployment* is one model on one upstream. Its own failures (5xx, 408/409/429, timeouts) say
that model is in trouble, and open only its breaker: the upstream's other models, the fallback
among them, keep serving. Connection-level failures (refused, reset, DNS, TLS) hit every model on
that upstream, so they count against the upstream's *host* breaker, which every deployment there
consults first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["host", "deployment"]
"""What a failure says is broken: the whole upstream, or one model on it."""


@dataclass
class Breaker:
    """`failures` in a row open it for `cooldown` seconds; then one probe is let through, whose
    outcome closes or re-opens it."""

    failures: int
    cooldown: float
    streak: int = 0
    open_until: float = 0.0
    probing: bool = False

    def allow(self, now: float) -> bool:
        if self.streak < self.failures:
            return True
        if now < self.open_until or self.probing:
            return False
        self.probing = True
        return True

    def record(self, ok: bool, now: float) -> None:
        self.probing = False
        if ok:
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= self.failures:
            self.open_until = now + self.cooldown

    def is_open(self, now: float) -> bool:
        return self.streak >= self.failures and now < self.open_until

    def retry_after(self, now: float) -> int:
        return max(1, int(self.open_until - now + 0.999))


@dataclass
class Blocked:
    """Why a deployment is skipped: which breaker is open, and for how long."""

    scope: Scope
    retry_after: int


class Breakers:
    """Every breaker of the gateway, created on first use. Keys are configured names only
    (upstream names and model names), so the set is bounded by the configuration."""

    def __init__(self, failures: int, cooldown: float) -> None:
        self._failures = failures
        self._cooldown = cooldown
        self._hosts: dict[str, Breaker] = {}
        self._deployments: dict[tuple[str, str], Breaker] = {}

    def host(self, upstream: str) -> Breaker:
        return self._hosts.setdefault(upstream, Breaker(self._failures, self._cooldown))

    def deployment(self, upstream: str, model: str) -> Breaker:
        key = (upstream, model)
        return self._deployments.setdefault(key, Breaker(self._failures, self._cooldown))

    def check(self, upstream: str, model: str, now: float) -> Blocked | None:
        """None when a request may go; else the open breaker. A half-open breaker lets exactly
        one probe through."""
        host = self.host(upstream)
        if not host.allow(now):
            return Blocked("host", host.retry_after(now))
        deployment = self.deployment(upstream, model)
        if not deployment.allow(now):
            host.probing = False  # the host's probe did not happen: let the next one try
            return Blocked("deployment", deployment.retry_after(now))
        return None

    def record(self, upstream: str, model: str, outcome: Scope | None, now: float) -> None:
        """`outcome`: None for a success, else the scope the failure counts against."""
        host, deployment = self.host(upstream), self.deployment(upstream, model)
        if outcome is None:
            host.record(ok=True, now=now)
            deployment.record(ok=True, now=now)
        elif outcome == "host":
            host.record(ok=False, now=now)
            deployment.probing = False
        else:
            host.record(ok=True, now=now)  # the host answered: its connection is fine
            deployment.record(ok=False, now=now)

    def release(self, upstream: str, model: str) -> None:
        """The attempt ended without an outcome (the client left): free any probe it held."""
        self.host(upstream).probing = False
        self.deployment(upstream, model).probing = False

    def open(self, now: float) -> dict[str, list[str]]:
        """The open breakers, for `/health` and `/metrics`."""
        return {
            "hosts": sorted(n for n, b in self._hosts.items() if b.is_open(now)),
            "deployments": sorted(
                f"{u}/{m}" for (u, m), b in self._deployments.items() if b.is_open(now)
            ),
        }
