"""What one request may send, and the ASGI guard that stops a body over the limit as it arrives."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The service's bounds; `fer-core serve` reads them from FER_SERVE_* variables."""

    max_body_bytes: int = 64 * 2**20  # a request's whole body: 413 beyond
    max_files: int = 32  # images in one request
    max_video_bytes: int = 60 * 2**20
    max_video_minutes: float = 5.0
    max_recognizers: int = 4  # option sets (model, detector, TTA) kept loaded at once
    max_queue: int = 32  # analyses in flight or waiting for the detector: 503 beyond

    @classmethod
    def from_environment(cls) -> Limits:
        def number(name: str, default, kind):
            value = os.environ.get(name)
            return kind(value) if value else default

        base = cls()
        return cls(
            max_body_bytes=number("FER_SERVE_MAX_BODY_MB", base.max_body_bytes / 2**20, float) * 2**20 // 1,
            max_files=number("FER_SERVE_MAX_FILES", base.max_files, int),
            max_video_bytes=number("FER_SERVE_MAX_VIDEO_MB", base.max_video_bytes / 2**20, float) * 2**20 // 1,
            max_video_minutes=number("FER_SERVE_MAX_VIDEO_MINUTES", base.max_video_minutes, float),
            max_queue=number("FER_SERVE_MAX_QUEUE", base.max_queue, int),
        )


class BodyTooLarge(Exception):
    """Raised into the app as the bytes received pass the limit; the app answers 413."""


class BodyLimit:
    """Answers 413 to a request whose body is over `max_bytes`: at once when its Content-Length
    says so, else as soon as the bytes received pass the limit (a chunked upload), so an
    oversized body is never read whole into memory."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._refuse(send)
        received, started, exceeded = 0, False, False

        async def limited_receive():
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def tracked_send(message):
            nonlocal started
            if exceeded:  # whatever the app made of the cut-off body (FastAPI: a 400), the answer is 413
                if not started:
                    started = True
                    await self._refuse(send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send) -> None:
        body = json.dumps({"error": f"the request body is over the limit of {self.max_bytes / 2**20:.0f} MiB"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
