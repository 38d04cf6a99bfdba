"""The classifier HTTP service (the seed's `bert_service`), as a Litestar app.

    uvicorn classifier.service:create_app --factory          # settings from the environment
    create_app(settings, service, classifier=FakeClassifier())  # tests inject a classifier

Routes: `POST /predict` and `POST /v1/classifications` (seed/HF shape), `POST /classify` (vLLM
shape), `GET /health`. The model loads in the background on a worker thread, so the server
answers at once: `/health` is 503 with the reason until the model is loaded and warmed up, and
classification requests get 503 meanwhile. Every error body has the OpenAI shape
`{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

from classifier.base import Classifier, ClassifierError, ClassifierUnavailable
from classifier.formats import (
    InputError,
    parse_classify_request,
    parse_predict_request,
    render_classify,
    render_predict,
)
from classifier.service_settings import ServiceSettings, from_environment
from classifier.settings import ClassifierSettings

logger = logging.getLogger(__name__)


class ServiceState:
    """The service's one classifier, loaded in the background unless injected, and its limits."""

    def __init__(
        self,
        settings: ClassifierSettings,
        service_settings: ServiceSettings,
        classifier: Classifier | None,
    ) -> None:
        self.settings = settings
        self.service_settings = service_settings
        self.classifier = classifier
        self.error: str | None = None

    async def load(self) -> None:
        """Load `LocalClassifier` on a worker thread; record the one-line reason on failure."""
        from classifier.local import LocalClassifier

        try:
            self.classifier = await asyncio.to_thread(LocalClassifier.load, self.settings)
        except ClassifierError as exc:
            self.error = str(exc)
            logger.error("%s", exc)  # one line: what failed and the fix
        except Exception as exc:  # an unexpected bug must still show up in /health
            self.error = f"loading the classifier failed: {type(exc).__name__}: {exc}"
            logger.exception("loading the classifier failed")

    def ready(self) -> Classifier:
        """The classifier, or `ClassifierUnavailable` saying why there is none yet."""
        if self.classifier is not None:
            return self.classifier
        if self.error is not None:
            raise ClassifierUnavailable(self.error)
        raise ClassifierUnavailable(f"the classifier model {self.settings.model!r} is loading")


def error_body(
    message: str, *, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, dict[str, str | None]]:
    """The OpenAI error shape used by every error response."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class RequestError(Exception):
    """A request the service refuses; becomes an OpenAI-shaped error response."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


# --- guards and body parsing ---


def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Refuse requests without `Authorization: Bearer <ROUTELLM_CLASSIFIER_API_KEY>`."""
    expected = connection.app.state.service.service_settings.api_key
    if expected is None:
        return
    scheme, _sep, key = connection.headers.get("authorization", "").partition(" ")
    # compare_digest: the time taken must not reveal how much of the key was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        key.strip().encode(), expected.encode()
    ):
        raise NotAuthorizedException("missing or invalid API key: send Authorization: Bearer <key>")


async def _json_body(request: Request[Any, Any, Any]) -> object:
    raw = await request.body()
    if not raw.strip():
        raise InputError('the request body is empty: send JSON such as {"inputs": "text"}')
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # includes JSONDecodeError and bad UTF-8
        raise InputError("the request body is not valid JSON") from None


def _service(request: Request[Any, Any, Any]) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


# --- handlers: parse, call the classifier, render ---


@post(["/predict", "/v1/classifications"], guards=[require_api_key], status_code=200)
async def predict(request: Request[Any, Any, Any]) -> Response[Any]:
    """Seed / Hugging Face shape: every label with its score, highest first."""
    service = _service(request)
    parsed = parse_predict_request(
        await _json_body(request), max_inputs=service.service_settings.max_inputs
    )
    scores = await service.ready().classify(parsed.texts)
    return Response(render_predict(scores, batch=parsed.batch))


@post("/classify", guards=[require_api_key], status_code=200)
async def classify(request: Request[Any, Any, Any]) -> Response[Any]:
    """vLLM `/classify` shape: probabilities in label order."""
    service = _service(request)
    parsed = parse_classify_request(
        await _json_body(request), max_inputs=service.service_settings.max_inputs
    )
    classifier = service.ready()
    scores = await classifier.classify(parsed.texts)
    return Response(render_classify(scores, model=classifier.name))


@get("/health")
async def health(request: Request[Any, Any, Any]) -> Response[Any]:
    """200 `{"status": "ok", "model"}` once the model is loaded and warmed up; 503 before."""
    service = _service(request)
    try:
        classifier = service.ready()
    except ClassifierUnavailable as exc:
        status = "unavailable" if service.error else "loading"
        body: dict[str, object] = {
            "status": status,
            "model": service.settings.model,
            "reason": str(exc),
        }
        return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    report = await classifier.health()
    if report.get("status", "ok") != "ok":
        reason = (
            report.get("reason") or report.get("last_error") or f"status {report.get('status')}"
        )
        body = {"status": report.get("status"), "model": classifier.name, "reason": reason}
        return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    return Response({"status": "ok", "model": classifier.name})


# --- the one place errors become responses ---


def _input_error(_: Request[Any, Any, Any], exc: InputError) -> Response[Any]:
    return Response(
        error_body(
            exc.message, type_="invalid_request_error", param=exc.param, code="invalid_input"
        ),
        status_code=400,
    )


def _classifier_error(_: Request[Any, Any, Any], exc: ClassifierError) -> Response[Any]:
    code = (
        "classifier_unavailable" if isinstance(exc, ClassifierUnavailable) else "classifier_error"
    )
    return Response(
        error_body(str(exc), type_="server_error", code=code),
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "1"},
    )


_HTTP_CODES = {
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
}


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    type_, code = _HTTP_CODES.get(
        status, ("invalid_request_error" if status < 500 else "server_error", None)
    )
    message = exc.detail
    if status == 413:
        limit = _service(request).service_settings.max_body_bytes
        message = f"the request body is larger than {limit} bytes: send fewer or shorter texts"
    elif status == 404:
        message = f"no route {request.url.path}: use POST /predict, /v1/classifications, /classify"
    elif status >= 500:
        logger.error("internal error on %r: %r", request.url.path, exc.detail)
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
    return Response(
        error_body(message, type_=type_, code=code), status_code=status, headers=headers
    )


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.exception("unexpected error on %r", request.url.path, exc_info=exc)
    return Response(
        error_body("internal error in the classifier service", type_="server_error"),
        status_code=500,
    )


# --- the app ---


def create_app(
    settings: ClassifierSettings | None = None,
    service: ServiceSettings | None = None,
    *,
    classifier: Classifier | None = None,
) -> Litestar:
    """Build the service from the classifier's `settings` and the service's own (default: none).

    Without `settings`, both come from the environment (the `--factory` path), except a `service`
    given. Without `classifier`, the lifespan loads `LocalClassifier` in the background and closes
    it at shutdown; an injected classifier is used as is (and also closed at shutdown)."""
    if settings is None:
        settings, env_service = from_environment()
        service = service or env_service
    service = service or ServiceSettings()
    state = ServiceState(settings, service, classifier)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        loading = None if state.classifier is not None else asyncio.create_task(state.load())
        try:
            yield
        finally:
            if loading is not None and not loading.done():
                # The loader thread cannot be interrupted; it finishes on its own and the
                # process exits without waiting for it (its batcher thread is a daemon).
                loading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loading
            if state.classifier is not None:
                await state.classifier.aclose()

    app = Litestar(
        route_handlers=[predict, classify, health],
        lifespan=[lifespan],
        request_max_body_size=service.max_body_bytes,
        exception_handlers={
            InputError: _input_error,
            ClassifierError: _classifier_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
    )
    app.state.service = state
    return app
