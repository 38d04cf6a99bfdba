"""The decision ledger: one row per request, kept in SQLite or a PostgreSQL shared by replicas.

    ledger = Ledger.open(settings)        # returns at once; the schema is made by the writer
    ledger.record(DecisionRow(...))       # never blocks, never raises
    await ledger.aclose()                 # flushes what is buffered

This module holds the tables, the rows and the writer; the queries and the reports built from
them (`/v1/savings`, `/v1/dashboard`, ...) are in `gateway.ledger.reports`. One set of
SQLAlchemy Core tables serves both stores. `record` puts the row on a bounded queue; a writer
thread inserts in batches. When the database is unwritable, locked or unreachable, the writer
keeps retrying its current batch with back-off while new rows wait in the queue; once the queue
is full, further rows are dropped and counted. The first failure is logged once, and so is the
recovery.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import platformdirs
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.ledger.quality import FeedbackScale, Verdict
from gateway.settings.accounts import LedgerSettings
from gateway.settings.load import Settings

__all__ = [
    "DecisionRow",
    "FeedbackRow",
    "Ledger",
    "LedgerStats",
    "VerdictRow",
    "new_request_id",
]

log = logging.getLogger("routellm.ledger")


WIN_LABEL = "LABEL_0"
BATCH = 500
GATHER_SECONDS = 0.25
BUFFER_ROWS = 10_000
CLOSE_SECONDS = 10.0
SCHEMA_LOCK = 0x726F7574656C6C6D  # "routellm": the advisory lock replicas make the schema under
Api = Literal["chat", "responses", "messages", "completions", "embeddings"]
"""The APIs the gateway serves (a row's `endpoint`, an API module's `name`)."""

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
    sa.Column("classified_chars", sa.Integer),
    sa.Column("classified_from", sa.String(32)),
    sa.Column("router", sa.String(256)),
    sa.Column("checkpoint", sa.String(1024)),
    sa.Column("candidate_model", sa.String(256)),
    sa.Column("candidate_score", sa.Float),
    sa.Column("cost_weight", sa.Float),
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
    classified_chars: int | None = None
    """Length of the text the router classified (`gateway.routing.human_text`)."""
    classified_from: str | None = None
    """Where that text came from: `user_text`, `previous_turn`, `fallback` or `none`."""
    router: str | None = None
    """The router that decided (`router`, a name under `routers:`); None for a direct model."""
    checkpoint: str | None = None
    """The checkpoint (or classifier URL) that classified the text."""
    candidate_model: str | None = None
    """In shadow mode, the model the router's candidate would have chosen, and its score."""
    candidate_score: float | None = None
    cost_weight: float | None = None
    """A many-model router's weight of price against quality (`scores` then holds each of its
    models' predicted quality)."""

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
    """On the ledger's one scale, -1 (bad) to 1 (good) (`gateway.ledger.quality.normalise`)."""
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
    """Estimated USD of the shadow and judge calls (`gateway.quality.shadow`)."""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerStats:
    """Counters for metrics: rows written, rows lost, failed write attempts, rows waiting."""

    written: int
    dropped: int
    failures: int
    buffered: int


ROW_FIELDS = tuple(f.name for f in fields(DecisionRow))
"""The columns of `decisions` that a `DecisionRow` holds (`win_rate` is derived from `scores`)."""


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
                self.ensure_schema()
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

    def ensure_schema(self) -> None:
        """Make the tables (and a SQLite file's directory) once; the writer and every read
        call it before touching the store."""
        with self._schema_lock:
            if not self._schema_ready:
                if self.engine.dialect.name == "sqlite" and self.engine.url.database:
                    Path(self.engine.url.database).parent.mkdir(parents=True, exist_ok=True)
                with self.engine.begin() as conn:
                    if conn.dialect.name == "postgresql":
                        # Replicas starting together take turns: the second finds the tables.
                        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK)))
                    metadata.create_all(conn, checkfirst=True)
                    self._add_new_columns(conn)
                self._schema_ready = True

    def _add_new_columns(self, conn: sa.Connection) -> None:
        """Columns added since a table was made (all nullable) are added to it in place, so a
        ledger written by an earlier version keeps its rows."""
        inspector = sa.inspect(conn)
        for table in metadata.sorted_tables:
            have = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in have:
                    kind = column.type.compile(dialect=self.engine.dialect)
                    conn.execute(
                        sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
                    )

    def _apply_retention(self) -> None:
        horizon = time.time() - self.settings.ledger.retention_days * 86400
        with self.engine.begin() as conn:
            for table in (decisions, feedback, verdicts):
                conn.execute(table.delete().where(table.c.created < horizon))

    async def add_feedback(self, row: FeedbackRow) -> bool:
        """Store a user's score for a request, replacing an earlier one; False when the ledger
        knows no request of that id (neither written nor waiting to be). Written at once, so
        that a client is told when its feedback could not be kept."""
        return await asyncio.to_thread(self._add_feedback, row)

    def _add_feedback(self, row: FeedbackRow) -> bool:
        self.ensure_schema()
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


def _to_db(row: DecisionRow | VerdictRow) -> tuple[sa.Table, dict[str, Any]]:
    if isinstance(row, VerdictRow):
        return verdicts, asdict(row)
    out = {name: getattr(row, name) for name in ROW_FIELDS}
    out["scores"] = dict(row.scores) if row.scores is not None else None
    out["win_rate"] = row.win_rate
    return decisions, out
