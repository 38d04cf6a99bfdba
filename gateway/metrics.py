"""Counters for `GET /metrics`, in the Prometheus text format."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Metrics:
    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    """(model, reason, status) → requests answered."""
    upstream_errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(model, error code) → failures seen from upstreams (including ones recovered by fallback)."""
    classify_seconds: float = 0.0
    classify_count: int = 0
    inflight: int = 0

    def render(self, extra: dict[str, float] | None = None) -> str:
        lines = [
            "# HELP routellm_requests_total Chat completions answered, by model, reason, status.",
            "# TYPE routellm_requests_total counter",
        ]
        for (model, reason, status), n in sorted(self.requests.items()):
            labels = f'model="{_esc(model)}",reason="{reason}",status="{status}"'
            lines.append(f"routellm_requests_total{{{labels}}} {n}")
        lines += [
            "# HELP routellm_upstream_errors_total Upstream failures, by model and error code.",
            "# TYPE routellm_upstream_errors_total counter",
        ]
        for (model, code), n in sorted(self.upstream_errors.items()):
            lines.append(
                f'routellm_upstream_errors_total{{model="{_esc(model)}",code="{code}"}} {n}'
            )
        lines += [
            "# HELP routellm_classify_seconds Time spent waiting for the classifier.",
            "# TYPE routellm_classify_seconds summary",
            f"routellm_classify_seconds_sum {self.classify_seconds:.6f}",
            f"routellm_classify_seconds_count {self.classify_count}",
            "# HELP routellm_inflight_requests Chat completions in flight.",
            "# TYPE routellm_inflight_requests gauge",
            f"routellm_inflight_requests {self.inflight}",
        ]
        for name, value in (extra or {}).items():
            lines += [f"# TYPE {name} gauge", f"{name} {value}"]
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
