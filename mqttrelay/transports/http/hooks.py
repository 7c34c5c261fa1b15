"""The hooks nginx-rtmp calls when a publisher starts and stops (the managed
nginx, or a hand-run one rendered by `mqttrelay nginx-conf`)."""

from __future__ import annotations

import hmac
import logging
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, Response

from mqttrelay.config import is_loopback
from mqttrelay.control.router import Router
from mqttrelay.lib.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)


def hook_routes(
    router: Router,
    *,
    api_token: str | None,
    hook_secret: str | None,
    hook_secret_required: bool,
    publish_key: str | None,
) -> APIRouter:
    """`api_token`: accepted in place of the secret, as URLs rendered before it
    had. `hook_secret_required`: a managed nginx always calls with the secret; a
    hand-run one rendered before the secret existed may call from loopback
    without it. `publish_key`: ingest.publish_key, checked on publish."""
    routes = APIRouter()
    warnings = RateLimitedLog(log, 60.0)

    def matches(given: str, secret: str | None) -> bool:
        return secret is not None and hmac.compare_digest(given.encode(), secret.encode())

    async def hook_allowed(request: Request) -> dict[str, str]:
        """The hook secret in the URL (or the API token, as URLs rendered before it had)."""
        given = request.query_params.get("secret", "")
        token = request.query_params.get("token", "")
        if not (matches(given, hook_secret) or (token and matches(token, api_token))):
            client = request.client.host if request.client else ""
            if hook_secret_required or given or token or not is_loopback(client):
                raise HTTPException(403, "missing or wrong hook secret")
            warnings.warning(
                "nginx calls the ingest hooks without their secret: render its config again "
                "(mqttrelay nginx-conf) and restart it"
            )
        body = (await request.body()).decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(body).items()}

    @routes.post("/api/hooks/on_publish", include_in_schema=False)
    async def on_publish(request: Request) -> Response:
        form = await hook_allowed(request)
        key = publish_key
        if key is not None and not hmac.compare_digest(form.get("key", "").encode(), key.encode()):
            log.warning("refused a publisher from %s: wrong or missing key", form.get("addr", "?"))
            return Response("wrong publish key", status_code=403)
        log.info("ingest: publisher started (%s)", form.get("name", "?"))
        router.notify_ingest_publishing(form.get("name"))
        return Response("ok")

    @routes.post("/api/hooks/on_publish_done", include_in_schema=False)
    async def on_publish_done(request: Request) -> Response:
        form = await hook_allowed(request)
        log.info("ingest: publisher stopped (%s)", form.get("name", "?"))
        router.notify_ingest_stopped(form.get("name"))
        return Response("ok")

    return routes
