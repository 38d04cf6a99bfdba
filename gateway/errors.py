"""The gateway's error tree, and `error_body`, the OpenAI error shape.

    GatewayError                      any failure a client is told about
    ├── InvalidRequest        400     malformed JSON, missing or ill-typed fields
    ├── Unauthorized          401     missing or wrong client key
    ├── ModelNotFound         404     a model name the gateway does not serve
    ├── BodyTooLarge          413     body over ROUTELLM_MAX_BODY_BYTES
    ├── AdminForbidden        403     an admin route without the admin key
    ├── LedgerDisabled        404     a ledger route with ROUTELLM_LEDGER=off
    ├── RequestNotFound       404     feedback for a request the ledger does not hold
    ├── Overloaded            429     concurrency cap reached (Retry-After)
    ├── LedgerUnavailable     503     the ledger cannot be read now
    ├── ShuttingDown          503     a new request while draining after SIGTERM
    └── UpstreamError         502     the upstream failed: refused, reset, 5xx, unreadable
        ├── UpstreamStatus    4xx/5xx an upstream answered an error status (body kept)
        └── UpstreamTimeout   504     no first byte, or a stream went idle, in time

Lower-layer errors (httpx) are translated into this tree in exactly one place,
`gateway.upstream.forwarder.translate_httpx_error`; a provider renders it in its API's shape
(`gateway.apis`), OpenAI's by default through `error_body`.
"""

from __future__ import annotations

from typing import Any, Literal


class GatewayError(Exception):
    """Base of every error a client sees; carries the HTTP status and OpenAI error fields."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, param=self.param, code=self.code)


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class BodyTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class Overloaded(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "gateway_overloaded"


class AdminForbidden(GatewayError):
    """An admin route called without an admin key while client keys are set."""

    status = 403
    type = "permission_error"
    code = "admin_key_required"


class LedgerDisabled(GatewayError):
    """A ledger route while `ROUTELLM_LEDGER=off`."""

    status = 404
    type = "invalid_request_error"
    code = "ledger_disabled"


class LedgerUnavailable(GatewayError):
    """The ledger's store cannot be read right now."""

    status = 503
    type = "server_error"
    code = "ledger_unavailable"


class RequestNotFound(GatewayError):
    """Feedback for a request id the ledger does not hold."""

    status = 404
    type = "invalid_request_error"
    code = "request_not_found"


class ReloadRefused(GatewayError):
    """A reload's new config is invalid, or changes what only a restart can: the old one
    keeps serving."""

    status = 422
    type = "invalid_request_error"
    code = "reload_refused"


class ShuttingDown(GatewayError):
    """A new request reached a draining gateway: retry it on another replica."""

    status = 503
    type = "server_error"
    code = "shutting_down"


class UpstreamError(GatewayError):
    """The upstream could not give an answer. `retryable` says whether a routed request may
    move to the fallback model (only ever before the first byte reached the client)."""

    status = 502
    type = "upstream_error"
    code: str | None = "upstream_error"
    retryable = True
    scope: Literal["host", "deployment"] = "deployment"
    """What the failure counts against: the upstream's host (refused, reset, DNS, TLS) or the
    one model that was asked (5xx, 408/409/429, timeouts). See `gateway.upstream.breakers`."""


class UpstreamStatus(UpstreamError):
    """The upstream answered an error status. 4xx other than 408/409/429 reach the client with
    their own status and body; 408/409/429 and 5xx are retryable, and 5xx become 502."""

    def __init__(
        self,
        upstream_status: int,
        payload: dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        raw = payload.get("error")
        error: dict[str, Any] = raw if isinstance(raw, dict) else {}
        message = str(error.get("message") or f"upstream answered HTTP {upstream_status}")
        super().__init__(message, param=error.get("param"), headers=headers)
        self.upstream_status = upstream_status
        self.payload = payload
        self.retryable = upstream_status in (408, 409, 429) or upstream_status >= 500
        self.status = upstream_status if upstream_status < 500 else 502
        if upstream_status < 500:
            # A client error is the client's to read: keep the upstream's own type and code.
            self.type = str(error.get("type") or "invalid_request_error")
            code = error.get("code")
            self.code = None if code is None else str(code)

    def body(self) -> dict[str, Any]:
        if self.status < 500 and isinstance(self.payload.get("error"), dict):
            # A well-formed upstream 4xx reaches the client exactly as the upstream wrote it.
            return self.payload
        return super().body()


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


class ClientDisconnected(Exception):
    """The client went away; nothing more is sent. Not a `GatewayError`: no one reads the body."""


def error_body(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The OpenAI error shape: `{"error": {"message", "type", "param", "code"}}`."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
