"""ASGI middleware of the service: API-key check, request-size limit, request metrics.

Written as plain ASGI (not ``BaseHTTPMiddleware``) so the size limit counts body bytes as they stream in and
answers 413 before an oversized upload is held in memory.
"""

from __future__ import annotations

import hmac
import json
import time

from .metrics import ServiceMetrics

OPEN_PATHS = ("/healthz",)  # answered without a key (liveness probes)


async def _reply(send, status: int, detail: str, headers: list | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})


class _TooLargeError(Exception):
    pass


class ServiceMiddleware:
    def __init__(self, app, key: str, max_body: int, metrics: ServiceMetrics):
        self.app, self.key, self.max_body, self.metrics = app, key, max_body, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_status(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, send_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)

    async def _handle(self, scope, receive, send) -> None:
        if self.key and scope["path"] not in OPEN_PATHS and not self._authorised(scope):
            challenge = [(b"www-authenticate", b"Bearer")]
            await _reply(send, 401, "missing or wrong API key (send X-API-Key: KEY)", challenge)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _reply(send, 413, f"request body over the limit of {self.max_body // 2**20} MB")
            return
        seen, over, replied = 0, False, False
        too_large = f"request body over the limit of {self.max_body // 2**20} MB"

        async def counted_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    over = True
                    raise _TooLargeError
            return message

        async def guarded_send(message) -> None:
            # a body sent without Content-Length (chunked) is counted as it streams; the form parser then turns the
            # stop into its own 400, which is replaced here by the 413 it is
            nonlocal replied
            if not over:
                await send(message)
            elif message["type"] == "http.response.start" and not replied:
                replied = True
                await _reply(send, 413, too_large)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _TooLargeError:
            if not replied:
                await _reply(send, 413, too_large)

    def _authorised(self, scope) -> bool:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-api-key", b"").decode(errors="replace")
        bearer = headers.get(b"authorization", b"").decode(errors="replace")
        if bearer.lower().startswith("bearer "):
            given = given or bearer[7:].strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.key.encode())
