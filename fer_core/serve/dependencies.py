"""What the service's endpoints depend on, kept on `app.state` and handed to them by `Depends`:
the API key check, the bounded queue of analyses, and the recognizers built once per option set."""

from __future__ import annotations

import hmac
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from fer_core.serve.limits import Limits

API_KEY_ENV = "FER_API_KEY"
# The key's two forms, as security schemes: /docs shows an Authorize button for either.
KEY_HEADER = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="the FER_API_KEY the service was started with"
)
BEARER = HTTPBearer(auto_error=False, description="the same key as `Authorization: Bearer KEY`")


class HTTPRefusal(Exception):
    """A request refused with `status` and one line (the app answers {"error": line})."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Recognizers:
    """One `Recognizer` per option set, shared by every request (it is thread-safe), the least
    recently used dropped first beyond `limit` (each holds its models in memory); the default
    set is never dropped."""

    def __init__(self, defaults: dict, limit: int):
        self.defaults, self.limit = defaults, limit
        self._made: OrderedDict[tuple, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, **chosen):
        """The recognizer of the defaults overridden by the options a request names (None: default)."""
        from fer_core.artifacts import resolve_models
        from fer_core.recognizer import Recognizer

        options = {**self.defaults, **{k: v for k, v in chosen.items() if v not in (None, "")}}
        if chosen.get("model"):  # names only: the service reads no paths
            options["model"] = ",".join(ref.name for ref in resolve_models(chosen["model"], names_only=True))
        key = _key(options)
        with self._lock:
            if key in self._made:
                self._made.move_to_end(key)
                return self._made[key]
            if len(self._made) >= self.limit:
                self._made.pop(next(k for k in self._made if k != _key(self.defaults)))
            self._made[key] = Recognizer(**options)
            return self._made[key]


def _key(options: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in options.items()))


@dataclass
class ServiceState:
    """`app.state.service`: the service's settings and shared parts."""

    limits: Limits
    api_key: str | None
    recognizers: Recognizers
    ready: bool = False
    error: str | None = None
    in_flight: int = 0  # analyses admitted and not yet answered (counted on the event loop)
    loading: threading.Thread | None = field(default=None, repr=False)

    def load_default(self) -> None:
        """The default recognizer loaded (on a thread: /health answers 503 meanwhile)."""
        try:
            self.recognizers.get().load()
            self.ready = True
        except Exception as exc:  # noqa: BLE001 - said by /health, the server stays up
            self.error = " ".join(str(exc).split())[:300]


def service(request: Request) -> ServiceState:
    return request.app.state.service


Service = Annotated[ServiceState, Depends(service)]


def require_key(
    state: Service,
    key: Annotated[str | None, Security(KEY_HEADER)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
) -> None:
    """The /v1 endpoints' key, when the service has one: X-API-Key or Authorization: Bearer."""
    if not state.api_key:
        return
    given = key or (bearer.credentials if bearer is not None else None)
    if not given or not hmac.compare_digest(given.encode(), state.api_key.encode()):
        raise HTTPRefusal(401, "missing or wrong API key (X-API-Key or Authorization: Bearer)")


async def admitted(state: Service):
    """A place in the bounded queue in front of the detector, or 503 with Retry-After."""
    if state.in_flight >= state.limits.max_queue:
        raise HTTPRefusal(503, f"busy: {state.in_flight} analyses in progress or waiting; retry shortly")
    state.in_flight += 1
    try:
        yield
    finally:
        state.in_flight -= 1


def multipart(request: Request) -> None:
    """An endpoint that takes files refuses another body in one line (rather than "files: Field required")."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPRefusal(415, "send multipart/form-data (base64 images as JSON go to POST /v1/analyze/base64)")
