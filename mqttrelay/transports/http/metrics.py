"""Prometheus metrics, read from the router at scrape time: one table a subject
(streams, the ingest, profiles), one loop fills each."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from mqttrelay.control.router import Router
from mqttrelay.control.views import IngestState, StreamState
from mqttrelay.relays.encoder import EncoderState

Family = GaugeMetricFamily | CounterMetricFamily
Row = TypeVar("Row")
GAUGE, COUNTER = GaugeMetricFamily, CounterMetricFamily


@dataclass(frozen=True)
class _Metric(Generic[Row]):
    kind: type[Family]
    name: str
    help: str
    value: Callable[[Row], float]


# one row a stream, labelled with its id; in the order they are exposed
_STREAM: tuple[_Metric[StreamState], ...] = (
    _Metric(GAUGE, "mqttrelay_stream_enabled", "Switched on (1) or off", lambda s: s.enabled),
    _Metric(
        GAUGE,
        "mqttrelay_stream_live",
        "Relaying to the platform now",
        lambda s: s.status in ("live", "congested"),
    ),
    _Metric(
        GAUGE,
        "mqttrelay_stream_standby",
        "Sending the standby picture now",
        lambda s: s.status == "standby",
    ),
    _Metric(
        GAUGE,
        "mqttrelay_stream_bitrate_kbps",
        "kbit/s sent to the platform",
        lambda s: s.bitrate_kbps,
    ),
    _Metric(
        GAUGE,
        "mqttrelay_stream_uptime_seconds",
        "Seconds since the relay went live",
        lambda s: s.uptime_s,
    ),
    _Metric(
        COUNTER, "mqttrelay_stream_restarts", "Relay restarts after errors", lambda s: s.restarts
    ),
    # how each platform's link keeps up: delay, backlog, drops, long outages
    _Metric(
        GAUGE,
        "mqttrelay_stream_congested",
        "The link to the platform is too slow: whole keyframe groups are dropped",
        lambda s: s.status == "congested",
    ),
    _Metric(
        GAUGE,
        "mqttrelay_stream_delay_seconds",
        "How far behind OBS the platform is fed",
        lambda s: (s.delay_ms or 0) / 1000,
    ),
    _Metric(
        GAUGE,
        "mqttrelay_stream_backlog_bytes",
        "Bytes waiting for the platform's link",
        lambda s: s.backlog_bytes or 0,
    ),
    _Metric(
        GAUGE,
        "mqttrelay_stream_dropped_ratio",
        "Share of the stream dropped for a slow link over the last 30 s",
        lambda s: s.dropped_share or 0.0,
    ),
    _Metric(
        GAUGE,
        "mqttrelay_stream_problem",
        "A long outage: still tried, but down",
        lambda s: s.problem is not None,
    ),
)

# the main ingest, unlabelled
_INGEST: tuple[_Metric[IngestState], ...] = (
    _Metric(GAUGE, "mqttrelay_ingest_live", "The ingest is live", lambda i: i.live),
    _Metric(
        GAUGE,
        "mqttrelay_ingest_standby",
        "The standby picture stands in for OBS",
        lambda i: i.standby,
    ),
    _Metric(
        GAUGE,
        "mqttrelay_ingest_video_unreadable",
        "A publisher is there, but none of its video arrives (e.g. HEVC/AV1 from OBS)",
        lambda i: i.problem is not None,
    ),
)

# one row an output profile, labelled with its name
_PROFILE: tuple[_Metric[EncoderState], ...] = (
    _Metric(GAUGE, "mqttrelay_profile_running", "Its encoder runs", lambda p: p.running),
    _Metric(
        GAUGE,
        "mqttrelay_profile_speed",
        "Media time per wall time (below 1: behind)",
        lambda p: p.speed or 0.0,
    ),
    _Metric(GAUGE, "mqttrelay_profile_cpu_percent", "Its encoder's CPU", lambda p: p.cpu_percent),
    _Metric(
        COUNTER,
        "mqttrelay_profile_dropped_frames",
        "Frames its encoder dropped",
        lambda p: p.dropped_frames,
    ),
    _Metric(
        COUNTER,
        "mqttrelay_profile_restarts",
        "Encoder restarts after errors",
        lambda p: p.restarts,
    ),
)


def _families(
    table: tuple[_Metric[Row], ...],
    rows: Iterable[Row],
    labels: list[str] | None = None,
    label_of: Callable[[Row], str] | None = None,
) -> list[Family]:
    """A family for each metric of `table`, a sample in each for every row."""
    families = [m.kind(m.name, m.help, labels=labels) for m in table]
    for row in rows:
        values = [label_of(row)] if label_of is not None else []
        for family, metric in zip(families, table, strict=True):
            family.add_metric(values, float(metric.value(row)))
    return families


class RouterCollector(Collector):
    def __init__(self, router: Router, mqtt_connected: bool) -> None:
        self._router = router
        self._mqtt_connected = mqtt_connected

    def collect(self) -> Iterator[Family]:
        router = self._router
        yield from _families(_STREAM, router.snapshot(), ["stream"], lambda s: s.id)
        yield from _families(_INGEST, [router.ingest_state()])
        yield from _families(_PROFILE, router.profiles(), ["profile"], lambda p: p.profile)
        mqtt = GaugeMetricFamily("mqttrelay_mqtt_connected", "Connected to the MQTT broker")
        mqtt.add_metric([], float(self._mqtt_connected))
        yield mqtt


def render_metrics(router: Router, mqtt_connected: bool) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RouterCollector(router, mqtt_connected))
    return generate_latest(registry), CONTENT_TYPE_LATEST
