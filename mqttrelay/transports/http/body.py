"""Request bodies the API takes: JSON only, and small (checked before any route)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException

from mqttrelay.transports.http.guard import plain_error, scope_headers

MAX_BODY_BYTES = 16 * 1024


class JsonBodyMiddleware:
    """JSON bodies only (415 otherwise), and none over MAX_BODY_BYTES (413)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = scope_headers(scope)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await plain_error(send, 413, f"request body over {MAX_BODY_BYTES} bytes")
            return
        path: str = scope["path"]
        form_ok = path.startswith("/api/hooks/")  # nginx-rtmp posts form-encoded callbacks
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        has_body = length not in (None, "0") or "transfer-encoding" in headers
        if has_body and content_type != "application/json" and not form_ok:
            await plain_error(send, 415, "send the body as application/json")
            return
        received = 0

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise HTTPException(413, f"request body over {MAX_BODY_BYTES} bytes")
            return message

        await self.app(scope, limited_receive, send)
