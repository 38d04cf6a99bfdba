"""`POST /v1/feedback`: a user's score for one answer, kept in the ledger against its request.

    POST /v1/feedback {"request_id": "req_...", "score": 1, "comment": "right first time"}
    POST /v1/feedback {"request_id": "req_...", "score": 0.8, "scale": "unit"}

`request_id` is the answer's `x-routellm-request-id`. `score` is -1..1 (`scale: "signed"`, the
default: -1 thumbs down, 1 thumbs up) or 0..1 (`scale: "unit"`); the ledger keeps the score as
sent (`raw_score`, `scale`) and on one -1..1 scale (`score`: a unit score s becomes 2s - 1).
A later score for the same request replaces the earlier one. Guarded by the client keys
(`ROUTELLM_API_KEYS`): users give feedback, not only admins.
"""

from __future__ import annotations

import math
import time
from typing import Any

from litestar import Request, post
from sqlalchemy.exc import SQLAlchemyError

from gateway.apis.schema import parse_body
from gateway.errors import (
    InvalidRequest,
    LedgerDisabled,
    LedgerUnavailable,
    RequestNotFound,
)
from gateway.http.handlers import require_key
from gateway.ledger.quality import FEEDBACK_SCALES, FeedbackScale, normalise
from gateway.ledger.writer import FeedbackRow, Ledger

__all__ = ["FEEDBACK_HANDLERS", "parse_feedback"]

MAX_COMMENT_CHARS = 4096
MAX_ID_CHARS = 64
FIELDS = frozenset({"request_id", "score", "scale", "comment"})
RANGES: dict[FeedbackScale, tuple[float, float]] = {"signed": (-1.0, 1.0), "unit": (0.0, 1.0)}


def parse_feedback(raw: bytes, now: float | None = None) -> FeedbackRow:
    """Validate a feedback body; `InvalidRequest` naming the field and the fix."""
    body = parse_body(raw)
    unknown = set(body) - FIELDS
    if unknown:
        raise InvalidRequest(
            f"Unknown field {sorted(unknown)[0]!r}: feedback takes request_id, score, scale "
            "and comment",
            param=sorted(unknown)[0],
        )
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_CHARS:
        raise InvalidRequest(
            "request_id must be the x-routellm-request-id of an answer, e.g. 'req_3f2a…'",
            param="request_id",
        )
    scale = body.get("scale", "signed")
    if scale not in FEEDBACK_SCALES:
        raise InvalidRequest(
            f"scale={scale!r} is not supported: use 'signed' (-1..1) or 'unit' (0..1)",
            param="scale",
        )
    low, high = RANGES[scale]
    score = body.get("score")
    if (
        not isinstance(score, int | float)
        or isinstance(score, bool)
        or not math.isfinite(score)
        or not low <= score <= high
    ):
        raise InvalidRequest(
            f"score must be a number from {low:g} to {high:g} on the {scale!r} scale "
            "(-1 bad to 1 good; send scale: 'unit' for 0..1)",
            param="score",
        )
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS):
        raise InvalidRequest(
            f"comment must be a string of at most {MAX_COMMENT_CHARS} characters",
            param="comment",
        )
    return FeedbackRow(
        request_id=request_id,
        created=time.time() if now is None else now,
        score=normalise(float(score), scale),
        raw_score=float(score),
        scale=scale,
        comment=comment,
    )


@post("/v1/feedback", guards=[require_key], status_code=200)
async def give_feedback(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """A user's score for an answer (client key): `request_id` (its `x-routellm-request-id`),
    `score` (-1..1, or 0..1 with `"scale": "unit"`) and an optional `comment`. A later score
    for the same request replaces the earlier one."""
    row = parse_feedback(await request.body())
    ledger: Ledger | None = request.app.state.ledger
    if ledger is None:
        raise LedgerDisabled(
            "Feedback is kept in the decision ledger, which is off (ROUTELLM_LEDGER=off): "
            "turn the ledger on to record feedback"
        )
    try:
        stored = await ledger.add_feedback(row)
    except (SQLAlchemyError, OSError) as exc:
        raise LedgerUnavailable(
            f"The feedback could not be stored ({type(exc).__name__}): send it again later"
        ) from exc
    if not stored:
        raise RequestNotFound(
            f"No request {row.request_id!r} in the decision ledger: send the "
            "x-routellm-request-id of an answer from this gateway (rows older than "
            "ROUTELLM_LEDGER_RETENTION_DAYS are deleted)",
            param="request_id",
        )
    return {
        "object": "feedback",
        "request_id": row.request_id,
        "score": row.score,
        "raw_score": row.raw_score,
        "scale": row.scale,
        "comment": row.comment,
    }


FEEDBACK_HANDLERS = [give_feedback]
