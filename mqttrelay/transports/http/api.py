"""The HTTP API and the web page, on the router; served by uvicorn in the same loop."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from mqttrelay import __version__
from mqttrelay.config import ConfigError
from mqttrelay.control.config_editor import ConfigEditor
from mqttrelay.control.reload import ReloadResult
from mqttrelay.control.router import (
    Router,
    StandbyError,
    UnknownSourceError,
    UnknownStreamError,
)
from mqttrelay.transports.http.body import JsonBodyMiddleware
from mqttrelay.transports.http.destination_routes import destination_routes
from mqttrelay.transports.http.events import TICKET_TTL_S, EventBroker, EventTickets
from mqttrelay.transports.http.guard import (
    DOCS_PATH,
    INGRESS_SCOPE_KEY,
    HostPolicy,
    RequestGuard,
)
from mqttrelay.transports.http.history import BitrateHistory, HistorySampler
from mqttrelay.transports.http.hooks import hook_routes
from mqttrelay.transports.http.messages import with_messages
from mqttrelay.transports.http.metrics import render_metrics
from mqttrelay.transports.http.models import (
    MAX_TIMER_S,
    HealthOut,
    HistoryOut,
    IngestOut,
    MqttOut,
    ReloadOut,
    SourceOut,
    StandbyUpdate,
    StreamOut,
    StreamUpdate,
    TicketOut,
    TimerAt,
    TimerIn,
    TimerOut,
    source_out,
    timer_out,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiSettings:
    """What the API reads from config.yaml (api, timezone, mqtt.enabled, the
    ingest's hook settings), made once at start."""

    token: str | None  # api.token
    timezone: str
    mqtt_enabled: bool = False
    api_host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    frame_ancestors: tuple[str, ...] = ()
    ingress_proxy: str | None = None  # api.ingress_proxy
    hook_secret: str | None = None
    # a managed nginx always calls with the secret; a hand-run one rendered
    # before the secret existed may call from loopback without it
    hook_secret_required: bool = False
    publish_key: str | None = None  # ingest.publish_key, checked by the on_publish hook


@dataclass(frozen=True)
class ApiHandles:
    """The running parts the API calls: no config value travels with them."""

    router: Router
    reload: Callable[[], Awaitable[ReloadResult]] | None  # None: not started from a file
    editor: ConfigEditor | None = None  # destinations and settings kept in config.yaml
    mqtt_connected: Callable[[], bool] = lambda: False
    problems: Callable[[], list[str]] = lambda: []
    state_error: Callable[[], str | None] = lambda: None  # why the state file went unwritten


def create_app(settings: ApiSettings, handles: ApiHandles) -> FastAPI:
    router = handles.router
    broker = EventBroker(router)
    app = FastAPI(
        title="mqttrelay", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.broker = broker
    history = BitrateHistory()
    app.state.history = HistorySampler(router, history)  # app.py starts and stops it
    app.add_middleware(JsonBodyMiddleware)
    page_html = (
        resources.files("mqttrelay.transports.http.web").joinpath("index.html").read_text("utf-8")
    )
    app.add_middleware(
        RequestGuard,  # outermost: before any route, and its headers on every answer
        hosts=HostPolicy.build(settings.api_host, settings.allowed_hosts),
        page_html=page_html,
        frame_ancestors=settings.frame_ancestors,
        ingress_proxy=settings.ingress_proxy,
    )
    tickets = EventTickets()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes the input: a secret, or a number JSON cannot
        # carry ({"enabled": 1e999} made it fail with a 500)
        # (`message`, and one per entry, say it in plain words for the page)
        return JSONResponse(with_messages(exc.errors()), status_code=422)

    def check_token(request: Request) -> None:
        if settings.token is None or request.scope.get(INGRESS_SCOPE_KEY) is not None:
            return  # Home Assistant signed the user in before its ingress proxy called
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else ""
        # EventSource cannot send headers: the page gets a short-lived ticket
        # instead (?token= still works, but proxies log query strings)
        if not given and request.url.path == "/api/events":
            if tickets.redeem(request.query_params.get("ticket", "")):
                return
            given = request.query_params.get("token", "")
        if not hmac.compare_digest(given.encode(), settings.token.encode()):
            raise HTTPException(401, "missing or wrong token", {"WWW-Authenticate": "Bearer"})

    auth = [Depends(check_token)]

    def stream_or_404(stream_id: str) -> StreamOut:
        try:
            return StreamOut(**asdict(router.stream_state(stream_id)))
        except UnknownStreamError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html, headers={"Cache-Control": "no-cache"})

    @app.get("/openapi.json", dependencies=auth, include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(DOCS_PATH, dependencies=auth, include_in_schema=False)
    async def docs() -> HTMLResponse:
        # a relative URL: the docs work under Home Assistant's ingress path too
        return get_swagger_ui_html(openapi_url="../openapi.json", title="mqttrelay API")

    @app.post("/api/events/ticket", dependencies=auth)
    async def event_ticket() -> TicketOut:
        """A ticket for one `GET /api/events?ticket=...`, valid for a short while."""
        return TicketOut(ticket=tickets.issue(), expires_in_s=TICKET_TTL_S)

    app.include_router(destination_routes(router, handles.editor, auth))

    @app.get("/api/streams", dependencies=auth)
    async def list_streams() -> list[StreamOut]:
        return [StreamOut(**asdict(s)) for s in router.snapshot()]

    @app.get("/api/streams/{stream_id}", dependencies=auth, responses={404: {}})
    async def get_stream(stream_id: str) -> StreamOut:
        return stream_or_404(stream_id)

    @app.put("/api/streams/{stream_id}", dependencies=auth, responses={404: {}, 415: {}})
    async def put_stream(stream_id: str, body: StreamUpdate) -> StreamOut:
        try:
            state = await router.set_enabled(stream_id, body.enabled)
        except UnknownStreamError as exc:
            raise HTTPException(404, str(exc)) from None
        return StreamOut(**asdict(state))

    @app.get("/api/sources", dependencies=auth)
    async def list_sources() -> list[SourceOut]:
        """Every ingest source (`main` first) with its state, as /api/health's ingest."""
        return [source_out(source) for source in router.sources()]

    @app.get("/api/sources/{source_id}", dependencies=auth, responses={404: {}})
    async def get_source(source_id: str) -> SourceOut:
        try:
            return source_out(router.source_state(source_id))
        except UnknownSourceError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.put("/api/standby", dependencies=auth, responses={409: {}, 415: {}})
    async def put_standby(body: StandbyUpdate) -> IngestOut:
        """Hold the standby picture by hand ("be right back"), or release it: OBS's
        picture then follows at its next keyframe."""
        try:
            return IngestOut(**asdict(router.hold_standby(body.held)))
        except StandbyError as exc:
            raise HTTPException(409, str(exc)) from None

    @app.post("/api/streams/{stream_id}/timer", dependencies=auth, responses={404: {}})
    async def add_timer(stream_id: str, body: TimerIn | TimerAt) -> TimerOut:
        stream_or_404(stream_id)
        now = datetime.now(UTC)
        if isinstance(body, TimerIn):
            due = now + timedelta(seconds=body.in_s)
        else:
            due = body.at if body.at.tzinfo else body.at.replace(tzinfo=ZoneInfo(settings.timezone))
            if due <= now:
                raise HTTPException(422, "'at' is in the past")
            if due - now > timedelta(seconds=MAX_TIMER_S):
                raise HTTPException(422, "'at' is more than 7 days away")
        return timer_out(router.add_timer(stream_id, body.action == "on", due))

    @app.get("/api/streams/{stream_id}/timer", dependencies=auth, responses={404: {}})
    async def list_timers(stream_id: str) -> list[TimerOut]:
        stream_or_404(stream_id)
        return [timer_out(t) for t in router.timers(stream_id)]

    @app.delete("/api/streams/{stream_id}/timer", dependencies=auth, responses={404: {}})
    async def cancel_timers(stream_id: str, timer_id: str | None = None) -> list[TimerOut]:
        """Cancel every pending timer of the stream, or only `timer_id`."""
        stream_or_404(stream_id)
        return [timer_out(t) for t in router.cancel_timers(stream_id, timer_id)]

    app.include_router(
        hook_routes(
            router,
            api_token=settings.token,
            hook_secret=settings.hook_secret,
            hook_secret_required=settings.hook_secret_required,
            publish_key=settings.publish_key,
        )
    )

    @app.post("/api/reload", dependencies=auth, responses={422: {}})
    async def reload() -> ReloadOut:
        if handles.reload is None:
            raise HTTPException(409, "this instance was not started from a config file")
        try:
            result = await handles.reload()
        except ConfigError as exc:
            raise HTTPException(422, exc.problems) from None
        return ReloadOut(**asdict(result))

    @app.get("/api/health", dependencies=auth)
    async def health() -> HealthOut:
        ingest = router.ingest_state()
        mqtt_ok = handles.mqtt_connected() or not settings.mqtt_enabled
        problems = handles.problems()
        healthy = mqtt_ok and handles.state_error() is None and not problems
        return HealthOut(
            status="ok" if healthy else "degraded",
            problems=problems,
            version=__version__,
            ingest=IngestOut(**asdict(ingest)),
            mqtt=MqttOut(enabled=settings.mqtt_enabled, connected=handles.mqtt_connected()),
            state_file_error=handles.state_error(),
        )

    @app.get("/api/events", dependencies=auth, response_class=StreamingResponse)
    async def events() -> StreamingResponse:
        """Server-sent events: 'snapshot' (everything) and 'stream' (one stream changed)."""
        return StreamingResponse(
            broker.stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/history", dependencies=auth)
    async def bitrate_history() -> HistoryOut:
        """The last minutes of bitrate, per destination and for the ingest:
        `[unix time, kbit/s]` pairs, one per `period_s`, oldest first."""
        return HistoryOut.model_validate(history.as_json(time.time()))

    @app.get("/metrics", dependencies=auth, include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = render_metrics(
            router, settings.mqtt_enabled and handles.mqtt_connected()
        )
        return Response(body, media_type=content_type)

    return app
