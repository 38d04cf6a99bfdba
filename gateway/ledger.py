"""The decision ledger: one row per request, kept in SQLite or a PostgreSQL shared by replicas.

    ledger = Ledger.open(settings)        # returns at once; the schema is made by the writer
    ledger.record(DecisionRow(...))       # never blocks, never raises
    await ledger.savings(since)           # what `/v1/savings` answers
    await ledger.aclose()                 # flushes what is buffered

One SQLAlchemy Core `Table` and one set of queries serve both stores. `record` puts the row on a
bounded queue; a writer thread inserts in batches. When the database is unwritable, locked or
unreachable, the writer keeps retrying its current batch with back-off while new rows wait in
the queue; once the queue is full, further rows are dropped and counted. The first failure is
logged once, and so is the recovery. Queries run on worker threads (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import platformdirs
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.pricing import Price, Usage, cost
from gateway.providers.base import Api
from gateway.quality import FeedbackScale, Verdict, quality_kept, reliability
from gateway.settings import LedgerSettings, Settings

__all__ = [
    "DecisionRow",
    "FeedbackRow",
    "Ledger",
    "LedgerStats",
    "VerdictRow",
    "new_request_id",
    "parse_since",
]

log = logging.getLogger("routellm.ledger")


RULE_REASONS = ("strong", "weak")
"""Reasons of decisions made by the win-rate rule: the only ones a threshold what-if re-decides."""
FALLBACK_REASONS = ("below_threshold", "classifier_error", "upstream_fallback")
WIN_LABEL = "LABEL_0"
BATCH = 500
GATHER_SECONDS = 0.25
BUFFER_ROWS = 10_000
CLOSE_SECONDS = 10.0
DASHBOARD_ROWS = 200_000
"""The dashboard reads at most this many of the newest rows of its window."""

metadata = sa.MetaData()
decisions = sa.Table(
    "routellm_decisions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float, nullable=False, index=True),
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("requested", sa.String(256), nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("label", sa.String(32)),
    sa.Column("score", sa.Float),
    sa.Column("win_rate", sa.Float),
    sa.Column("scores", sa.JSON),
    sa.Column("threshold", sa.Float),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("stream", sa.Boolean, nullable=False),
    sa.Column("input_tokens", sa.Integer),
    sa.Column("cached_input_tokens", sa.Integer),
    sa.Column("output_tokens", sa.Integer),
    sa.Column("cost_usd", sa.Float),
    sa.Column("baseline_cost_usd", sa.Float),
    sa.Column("classify_ms", sa.Float),
    sa.Column("first_byte_ms", sa.Float),
    sa.Column("total_ms", sa.Float),
    sa.Column("conversation", sa.String(256)),
    sa.Column("prompt", sa.Text),
)
feedback = sa.Table(
    "routellm_feedback",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float, nullable=False, index=True),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("raw_score", sa.Float, nullable=False),
    sa.Column("scale", sa.String(16), nullable=False),
    sa.Column("comment", sa.Text),
)
verdicts = sa.Table(
    "routellm_verdicts",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float, nullable=False, index=True),
    sa.Column("strong", sa.String(256), nullable=False),
    sa.Column("weak", sa.String(256), nullable=False),
    sa.Column("judge", sa.String(256), nullable=False),
    sa.Column("picked", sa.String(256), nullable=False),
    sa.Column("verdict", sa.String(16)),
    sa.Column("win_rate", sa.Float, nullable=False),
    sa.Column("threshold", sa.Float),
    sa.Column("strong_first", sa.Boolean, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("error", sa.String(512)),
)


def new_request_id() -> str:
    """A fresh request id: the ledger row's key and the `x-routellm-request-id` header."""
    return f"req_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One request as the ledger keeps it: the decision, its outcome, tokens, cost and timings.
    `prompt` is dropped by `Ledger.record` unless `ROUTELLM_LEDGER_PROMPTS=1`."""

    id: str
    created: float
    """Unix time (seconds) the request arrived."""
    requested: str
    """The model name the client sent (`router`, `router-bert-0.5`, a direct name)."""
    model: str
    """The model that answered (or was last tried)."""
    reason: str
    status: int
    stream: bool
    label: str | None = None
    score: float | None = None
    scores: Mapping[str, float] | None = None
    threshold: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cost_usd: float | None = None
    baseline_cost_usd: float | None = None
    classify_ms: float | None = None
    first_byte_ms: float | None = None
    total_ms: float | None = None
    conversation: str | None = None
    endpoint: Api = "chat"
    prompt: str | None = None

    @property
    def win_rate(self) -> float | None:
        """P(LABEL_0): the strong model's win rate, when the request was classified."""
        value = (self.scores or {}).get(WIN_LABEL)
        return None if value is None else float(value)

    def as_json(self) -> dict[str, Any]:
        """The `GET /v1/decisions` item; `prompt` only when one was stored."""
        out = asdict(self)
        out["scores"] = dict(self.scores) if self.scores is not None else None
        if out["prompt"] is None:
            del out["prompt"]
        return out


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    """A user's score for one answer (`POST /v1/feedback`); a later one replaces it."""

    request_id: str
    created: float
    score: float
    """On the ledger's one scale, -1 (bad) to 1 (good) (`gateway.quality.normalise`)."""
    raw_score: float
    """The score as the client sent it."""
    scale: FeedbackScale
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class VerdictRow:
    """One shadow judgement: the routed answer beside the other model's, and what it cost."""

    request_id: str
    created: float
    strong: str
    weak: str
    judge: str
    picked: str
    """The model that answered the client (the other one answered in the shadow)."""
    verdict: Verdict | None
    """None when the shadow or judge call failed (`error` says how); its spend still counts."""
    win_rate: float
    """P(LABEL_0) of the request: the router's prediction of a `strong` verdict."""
    threshold: float | None
    strong_first: bool
    """The judge saw the strong model's answer first (the order is random)."""
    cost_usd: float
    """Estimated USD of the shadow and judge calls (`gateway.shadow`)."""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerStats:
    """Counters for metrics: rows written, rows lost, failed write attempts, rows waiting."""

    written: int
    dropped: int
    failures: int
    buffered: int


_ROW_FIELDS = tuple(f.name for f in fields(DecisionRow))
_FEEDBACK_FIELDS = ("score", "raw_score", "scale", "comment", "created")
_VERDICT_FIELDS = tuple(
    f.name for f in fields(VerdictRow) if f.name not in ("request_id", "win_rate")
)
_STOP = object()


def default_ledger_path() -> Path:
    """Where the ledger lives when `ROUTELLM_LEDGER` is unset: the user's state directory."""
    return Path(platformdirs.user_state_dir("routellm-gateway")) / "ledger.sqlite3"


def make_engine(config: LedgerSettings) -> Engine:
    """An engine for `config.location`: a `postgresql://` URL (psycopg 3) or a SQLite file."""
    location = config.location
    if location and location.split("://", 1)[0].lower() in ("postgresql", "postgres"):
        url = sa.make_url(location).set(drivername="postgresql+psycopg")
        # pre-ping: connections that died with the server are replaced, not handed out.
        return sa.create_engine(
            url, pool_pre_ping=True, pool_size=4, connect_args={"connect_timeout": 3}
        )
    if location and location.split("://", 1)[0].lower() == "postgresql+psycopg":
        return sa.create_engine(location, pool_pre_ping=True, connect_args={"connect_timeout": 3})
    path = location.removeprefix("sqlite:///") if location else str(default_ledger_path())
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 2.0})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _: Any) -> None:
        # WAL lets dashboard reads run beside the writer; a locked file is retried for 2 s.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


class Ledger:
    """The decision ledger of one gateway process. Build it with `Ledger.open(settings)`."""

    def __init__(self, settings: Settings, engine: Engine, *, buffer_rows: int = BUFFER_ROWS):
        self.settings = settings
        self.engine = engine
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=buffer_rows)
        self._stopping = threading.Event()
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._written = 0
        self._dropped = 0
        self._failures = 0
        self._in_batch = 0
        self._pending: set[str] = set()
        """Ids of decision rows queued but not yet written: feedback may already name them."""
        self._thread = threading.Thread(target=self._run, name="routellm-ledger", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, settings: Settings, *, buffer_rows: int = BUFFER_ROWS) -> Ledger:
        """Start the ledger of `settings.ledger`; returns at once, even if the store is down."""
        return cls(settings, make_engine(settings.ledger), buffer_rows=buffer_rows)

    # --- writing -------------------------------------------------------------------------

    def record(self, row: DecisionRow | VerdictRow) -> None:
        """Queue `row` for writing. Never blocks and never raises: a full queue counts a loss."""
        keep_prompt = self.settings.ledger.store_prompts
        if isinstance(row, DecisionRow) and row.prompt is not None and not keep_prompt:
            row = replace(row, prompt=None)
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self._dropped += 1
            return
        if isinstance(row, DecisionRow):
            self._pending.add(row.id)

    def stats(self) -> LedgerStats:
        return LedgerStats(
            self._written, self._dropped, self._failures, self._queue.qsize() + self._in_batch
        )

    async def aclose(self) -> None:
        """Write what is buffered (giving up after `CLOSE_SECONDS`), then close the store."""
        self._stopping.set()
        await asyncio.to_thread(self._thread.join, CLOSE_SECONDS)
        self.engine.dispose()

    def _run(self) -> None:
        batch: list[tuple[sa.Table, dict[str, Any]]] = []
        delay = 0.2
        failing = False
        next_retention = 0.0
        while True:
            if not batch:
                batch = self._take()
                self._in_batch = len(batch)
            if not batch:
                if self._stopping.is_set():
                    return
                continue
            try:
                self._ensure_schema()
                if time.time() >= next_retention:
                    self._apply_retention()
                    next_retention = time.time() + 3600
                with self.engine.begin() as conn:
                    for table in (decisions, verdicts):  # a verdict follows its decision
                        rows = [values for into, values in batch if into is table]
                        if rows:
                            conn.execute(table.insert(), rows)
            except Exception as exc:  # any store failure: keep the batch, count, retry later
                self._failures += 1
                if not failing:
                    log.error(
                        "ledger: cannot write (%s: %s); rows are buffered (at most %d) and "
                        "counted as dropped beyond that",
                        type(exc).__name__,
                        str(exc).splitlines()[0][:200] if str(exc) else "",
                        self._queue.maxsize,
                    )
                    failing = True
                if self._stopping.is_set():
                    self._dropped += len(batch) + self._queue.qsize()
                    self._in_batch = 0
                    return
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._written += len(batch)
            self._pending.difference_update(v["id"] for t, v in batch if t is decisions)
            batch, self._in_batch, delay = [], 0, 0.2
            if failing:
                log.warning("ledger: writes resumed")
                failing = False

    def _take(self) -> list[tuple[sa.Table, dict[str, Any]]]:
        """Up to `BATCH` rows: waits briefly for the first, lets more gather for `GATHER_SECONDS`
        (one transaction for many rows: the writer's Python work shares the GIL with the event
        loop, so fewer, larger writes cost requests less), then takes what is queued."""
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        self._stopping.wait(GATHER_SECONDS)
        rows = [first]
        while len(rows) < BATCH:
            try:
                rows.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return [_to_db(row) for row in rows]

    def _ensure_schema(self) -> None:
        with self._schema_lock:
            if not self._schema_ready:
                if self.engine.dialect.name == "sqlite" and self.engine.url.database:
                    Path(self.engine.url.database).parent.mkdir(parents=True, exist_ok=True)
                metadata.create_all(self.engine, checkfirst=True)
                self._schema_ready = True

    def _apply_retention(self) -> None:
        horizon = time.time() - self.settings.ledger.retention_days * 86400
        with self.engine.begin() as conn:
            for table in (decisions, feedback, verdicts):
                conn.execute(table.delete().where(table.c.created < horizon))

    # --- reading -------------------------------------------------------------------------

    async def decisions(self, limit: int = 100, since: float | None = None) -> list[DecisionRow]:
        """The newest `limit` rows created at or after `since` (unix seconds), newest first."""
        return await asyncio.to_thread(self._decisions, limit, since)

    async def savings(self, since: float | None = None) -> dict[str, Any]:
        """The `GET /v1/savings` report over rows created at or after `since`."""
        return await asyncio.to_thread(self._savings, since)

    async def what_if(self, threshold: float, since: float | None = None) -> dict[str, Any]:
        """Strong share and cost had the win-rate rule used `threshold` on the recorded traffic."""
        return await asyncio.to_thread(self._what_if_sync, threshold, since)

    async def dashboard(self, since: float | None = None, buckets: int = 24) -> dict[str, Any]:
        """Everything `/ui` draws: savings, share per model over time, the P(LABEL_0)
        histogram, latency percentiles, fallbacks and errors, and the what-if at the current
        threshold."""
        return await asyncio.to_thread(self._dashboard, since, buckets)

    async def win_rates(self, since: float | None = None) -> list[float]:
        """P(LABEL_0) of every classified request since `since` (for calibration)."""
        return await asyncio.to_thread(self._win_rates, since)

    async def add_feedback(self, row: FeedbackRow) -> bool:
        """Store a user's score for a request, replacing an earlier one; False when the ledger
        knows no request of that id (neither written nor waiting to be). Written at once, so
        that a client is told when its feedback could not be kept."""
        return await asyncio.to_thread(self._add_feedback, row)

    async def export(self, limit: int = 100, since: float | None = None) -> list[dict[str, Any]]:
        """`GET /v1/decisions` items: each decision row with its `feedback` and shadow
        `verdict` (None when it has none), newest first."""
        return await asyncio.to_thread(self._export, limit, since)

    async def shadow_spend(self, since: float) -> float:
        """USD spent on shadow judging since `since` (unix seconds), as recorded."""
        return await asyncio.to_thread(self._shadow_spend, since)

    def _add_feedback(self, row: FeedbackRow) -> bool:
        self._ensure_schema()
        known = row.request_id in self._pending
        with self.engine.begin() as conn:
            if not known:
                query = sa.select(decisions.c.id).where(decisions.c.id == row.request_id)
                known = conn.execute(query).first() is not None
            if not known:
                return False
            conn.execute(feedback.delete().where(feedback.c.request_id == row.request_id))
            conn.execute(feedback.insert(), [asdict(row)])
        return True

    def _export(self, limit: int, since: float | None) -> list[dict[str, Any]]:
        rows = self._decisions(limit, since)
        ids = [row.id for row in rows]
        scores: dict[str, dict[str, Any]] = {}
        judged: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):  # bounded IN lists
                chunk = ids[start : start + 500]
                query = sa.select(feedback).where(feedback.c.request_id.in_(chunk))
                for item in conn.execute(query):
                    scores[item.request_id] = {k: getattr(item, k) for k in _FEEDBACK_FIELDS}
                query = sa.select(verdicts).where(verdicts.c.request_id.in_(chunk))
                for item in conn.execute(query):
                    judged[item.request_id] = {k: getattr(item, k) for k in _VERDICT_FIELDS}
        return [
            {**row.as_json(), "feedback": scores.get(row.id), "verdict": judged.get(row.id)}
            for row in rows
        ]

    def _shadow_spend(self, since: float) -> float:
        self._ensure_schema()
        query = sa.select(sa.func.sum(verdicts.c.cost_usd)).where(verdicts.c.created >= since)
        with self.engine.connect() as conn:
            return float(conn.execute(query).scalar() or 0.0)

    def _quality(self, since: float | None) -> dict[str, Any]:
        """The dashboard's quality figures: feedback per model, the reliability diagram of
        judged requests, the quality kept at the current threshold, and the shadow spend."""
        c, f, v = decisions.c, feedback.c, verdicts.c
        per_model = self._select(
            c.model,
            sa.func.count(),
            sa.func.count(f.request_id),
            sa.func.avg(f.score),
            since=since,
        ).select_from(decisions.outerjoin(feedback, feedback.c.request_id == c.id))
        judged_query = sa.select(v.win_rate, v.verdict).where(v.verdict.is_not(None))
        spend_query = sa.select(sa.func.count(), sa.func.sum(v.cost_usd), sa.func.count(v.error))
        if since is not None:
            judged_query = judged_query.where(v.created >= since)
            spend_query = spend_query.where(v.created >= since)
        judged_query = judged_query.order_by(v.created.desc()).limit(DASHBOARD_ROWS)
        with self.engine.connect() as conn:
            groups = list(conn.execute(per_model.group_by(c.model)))
            judged = [(float(w), str(x)) for w, x in conn.execute(judged_query)]
            attempts, spent, failed = conn.execute(spend_query).one()
        pairs: list[tuple[float, Verdict]] = [
            (w, x)  # type: ignore[misc]  # the writer only stores `Verdict` values
            for w, x in judged
        ]
        return {
            "feedback": {
                model: {
                    "requests": n,
                    "feedback": rated,
                    "rate": rated / n if n else 0.0,
                    "mean_score": None if mean is None else float(mean),
                }
                for model, n, rated, mean in sorted(groups, key=lambda g: (-g[1], g[0]))
            },
            "reliability": reliability(pairs),
            "kept": quality_kept(pairs, self.settings.threshold),
            "shadow": {
                "attempts": attempts,
                "failed": failed,
                "judged": len(pairs),
                "spent_usd": float(spent or 0.0),
                "daily_budget_usd": self.settings.quality.daily_budget_usd,
                "share": self.settings.quality.shadow_share,
                "judge": self.settings.quality.judge,
            },
        }

    def _select(self, *columns: Any, since: float | None) -> sa.Select[Any]:
        query = sa.select(*columns)
        if since is not None:
            query = query.where(decisions.c.created >= since)
        return query

    def _decisions(self, limit: int, since: float | None) -> list[DecisionRow]:
        self._ensure_schema()
        query = self._select(*(decisions.c[name] for name in _ROW_FIELDS), since=since)
        query = query.order_by(decisions.c.created.desc(), decisions.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [DecisionRow(**row._asdict()) for row in conn.execute(query)]

    def _savings(self, since: float | None) -> dict[str, Any]:
        self._ensure_schema()
        c = decisions.c
        priced = sa.and_(c.cost_usd.is_not(None), c.baseline_cost_usd.is_not(None))
        query = self._select(
            c.model,
            sa.func.count(),
            sa.func.sum(c.cost_usd),
            sa.func.sum(sa.case((priced, c.cost_usd))),
            sa.func.sum(sa.case((priced, c.baseline_cost_usd))),
            sa.func.sum(sa.case((sa.and_(c.status < 400, sa.not_(priced)), 1), else_=0)),
            since=since,
        ).group_by(c.model)
        with self.engine.connect() as conn:
            groups = list(conn.execute(query))
        return savings_report(
            (model, n, own, cost_, base, unpriced)
            for model, n, own, cost_, base, unpriced in groups
        )

    def _rows_for_analysis(self, since: float | None) -> list[Any]:
        c = decisions.c
        query = self._select(
            c.created,
            c.model,
            c.reason,
            c.status,
            c.win_rate,
            c.input_tokens,
            c.cached_input_tokens,
            c.output_tokens,
            c.cost_usd,
            c.baseline_cost_usd,
            c.classify_ms,
            c.first_byte_ms,
            since=since,
        )
        query = query.order_by(c.created.desc()).limit(DASHBOARD_ROWS)
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def _what_if_sync(self, threshold: float, since: float | None) -> dict[str, Any]:
        self._ensure_schema()
        return what_if(self._rows_for_analysis(since), threshold, self._rule_prices())

    def _rule_prices(self) -> tuple[Price | None, Price | None]:
        models = self.settings.models
        strong = models.get(self.settings.strong or "")
        weak = models.get(self.settings.weak or "")
        return (strong.price if strong else None, weak.price if weak else None)

    def _win_rates(self, since: float | None) -> list[float]:
        self._ensure_schema()
        query = self._select(decisions.c.win_rate, since=since).where(
            decisions.c.win_rate.is_not(None)
        )
        with self.engine.connect() as conn:
            return [float(v) for (v,) in conn.execute(query)]

    def _dashboard(self, since: float | None, buckets: int) -> dict[str, Any]:
        self._ensure_schema()
        now = time.time()
        rows = self._rows_for_analysis(since)
        start = since if since is not None else min((r.created for r in rows), default=now)
        width = max((now - start) / buckets, 1e-9)
        series: list[Counter[str]] = [Counter() for _ in range(buckets)]
        histogram = [0] * 20
        reasons: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        classify, first_byte = [], []
        for r in rows:
            series[min(max(int((r.created - start) / width), 0), buckets - 1)][r.model] += 1
            if r.win_rate is not None:
                histogram[min(max(int(r.win_rate * 20), 0), 19)] += 1
            reasons[r.reason] += 1
            if r.status >= 400:
                errors[str(r.status)] += 1
            if r.classify_ms is not None:
                classify.append(r.classify_ms)
            if r.first_byte_ms is not None:
                first_byte.append(r.first_byte_ms)
        threshold = self.settings.threshold
        return {
            "since": start,
            "until": now,
            "savings": self._savings(since),
            "series": {
                "bucket_seconds": width,
                "starts": [start + i * width for i in range(buckets)],
                "models": sorted({m for bucket in series for m in bucket}),
                "counts": [dict(bucket) for bucket in series],
            },
            "histogram": {"bins": 20, "counts": histogram},
            "threshold": threshold,
            "strong": self.settings.strong,
            "weak": self.settings.weak,
            "baseline": self.settings.baseline,
            "latency_ms": {
                "classify": percentiles(classify),
                "first_byte": percentiles(first_byte),
            },
            "reasons": dict(reasons),
            "fallbacks": sum(reasons[r] for r in FALLBACK_REASONS),
            "errors": dict(errors),
            "what_if": what_if(rows, threshold, self._rule_prices()),
            "quality": self._quality(since),
        }


def _to_db(row: DecisionRow | VerdictRow) -> tuple[sa.Table, dict[str, Any]]:
    if isinstance(row, VerdictRow):
        return verdicts, asdict(row)
    out = {name: getattr(row, name) for name in _ROW_FIELDS}
    out["scores"] = dict(row.scores) if row.scores is not None else None
    out["win_rate"] = row.win_rate
    return decisions, out


def savings_report(
    groups: Iterable[tuple[str, int, float | None, float | None, float | None, int | None]],
) -> dict[str, Any]:
    """The `/v1/savings` object from per-model sums (model, requests, its known cost, cost and
    baseline cost of its priced requests, unpriced answered requests). `cost_usd` and
    `baseline_cost_usd` add up only requests whose cost and baseline cost are both known, so
    that `saved_usd` compares like with like; `unpriced_requests` counts answered requests
    left out for that reason (failed requests cost nothing and are not counted)."""
    groups = list(groups)
    total = sum(n for _, n, *_ in groups)
    spent = sum(g[3] or 0.0 for g in groups)
    baseline = sum(g[4] or 0.0 for g in groups)
    saved = baseline - spent
    return {
        "requests": total,
        "by_model": {
            model: {"requests": n, "share": n / total if total else 0.0, "cost_usd": own}
            for model, n, own, *_ in sorted(groups, key=lambda g: (-g[1], g[0]))
        },
        "cost_usd": spent,
        "baseline_cost_usd": baseline,
        "saved_usd": saved,
        "saved_share": saved / baseline if baseline > 0 else None,
        "unpriced_requests": sum(int(g[5] or 0) for g in groups),
    }


def what_if(
    rows: Sequence[Any], threshold: float, prices: tuple[Price | None, Price | None]
) -> dict[str, Any]:
    """Re-decide the recorded traffic at `threshold`. Rows the win-rate rule decided (reason
    `strong` or `weak`, P(LABEL_0) known) go to the strong model when P(LABEL_0) ≥ threshold,
    else the weak one, and cost their recorded tokens at that model's price; every other row
    keeps its recorded cost. Sums follow `savings_report`'s rule (cost and baseline known)."""
    strong_price, weak_price = prices
    routed = strong = unpriced = 0
    spent = baseline = 0.0
    for r in rows:
        row_cost = r.cost_usd
        if r.reason in RULE_REASONS and r.win_rate is not None:
            routed += 1
            goes_strong = r.win_rate >= threshold
            strong += goes_strong
            usage = None
            if r.input_tokens is not None and r.output_tokens is not None:
                usage = Usage(r.input_tokens, r.output_tokens, r.cached_input_tokens or 0)
            row_cost = cost(strong_price if goes_strong else weak_price, usage)
        if row_cost is None or r.baseline_cost_usd is None:
            unpriced += r.status < 400
            continue
        spent += row_cost
        baseline += r.baseline_cost_usd
    return {
        "threshold": threshold,
        "requests": len(rows),
        "routed_requests": routed,
        "strong_share": strong / routed if routed else None,
        "cost_usd": spent,
        "baseline_cost_usd": baseline,
        "saved_usd": baseline - spent,
        "saved_share": (baseline - spent) / baseline if baseline > 0 else None,
        "unpriced_requests": unpriced,
    }


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p90/p99 by nearest rank (a value that was actually observed); None when empty."""
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        out[name] = ordered[max(math.ceil(q * len(ordered)) - 1, 0)] if ordered else None
    return out


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """`since` of the admin routes and the CLI: unix seconds (`1767225600`), an ISO-8601 time
    (`2026-01-01T00:00:00Z`), or a duration back from now (`30m`, `24h`, `7d`). Raises
    `ValueError` with a message a user can act on."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    now = time.time() if now is None else now
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT[match.group(2)]
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value):
            return value
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"since={text!r} is not a time: use unix seconds, an ISO-8601 time such as "
            "2026-01-01T00:00:00Z, or a duration such as 24h or 7d"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"since={text!r} has no time zone: add Z or +00:00")
    return moment.timestamp()
