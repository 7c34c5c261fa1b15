"""Prometheus metrics, read from the router at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from mqttrelay.control.router import Router
from mqttrelay.control.views import StreamState


class RouterCollector(Collector):
    def __init__(self, router: Router, mqtt_connected: bool) -> None:
        self._router = router
        self._mqtt_connected = mqtt_connected

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["stream"]
        enabled = GaugeMetricFamily(
            "mqttrelay_stream_enabled", "Switched on (1) or off", labels=labels
        )
        live = GaugeMetricFamily(
            "mqttrelay_stream_live", "Relaying to the platform now", labels=labels
        )
        standby = GaugeMetricFamily(
            "mqttrelay_stream_standby", "Sending the standby picture now", labels=labels
        )
        bitrate = GaugeMetricFamily(
            "mqttrelay_stream_bitrate_kbps", "kbit/s sent to the platform", labels=labels
        )
        uptime = GaugeMetricFamily(
            "mqttrelay_stream_uptime_seconds", "Seconds since the relay went live", labels=labels
        )
        restarts = CounterMetricFamily(
            "mqttrelay_stream_restarts", "Relay restarts after errors", labels=labels
        )
        link = _LinkMetrics(labels)
        for state in self._router.snapshot():
            enabled.add_metric([state.id], float(state.enabled))
            live.add_metric([state.id], float(state.status in ("live", "congested")))
            link.add(state)
            standby.add_metric([state.id], float(state.status == "standby"))
            bitrate.add_metric([state.id], state.bitrate_kbps)
            uptime.add_metric([state.id], state.uptime_s)
            restarts.add_metric([state.id], state.restarts)
        yield from (enabled, live, standby, bitrate, uptime, restarts)
        yield from link.families()
        now = self._router.ingest_state()
        ingest = GaugeMetricFamily("mqttrelay_ingest_live", "The ingest is live")
        ingest.add_metric([], float(now.live))
        on_standby = GaugeMetricFamily(
            "mqttrelay_ingest_standby", "The standby picture stands in for OBS"
        )
        on_standby.add_metric([], float(now.standby))
        unreadable = GaugeMetricFamily(
            "mqttrelay_ingest_video_unreadable",
            "A publisher is there, but none of its video arrives (e.g. HEVC/AV1 from OBS)",
        )
        unreadable.add_metric([], float(now.problem is not None))
        yield from (ingest, on_standby, unreadable)
        yield from _profile_metrics(self._router)
        mqtt = GaugeMetricFamily("mqttrelay_mqtt_connected", "Connected to the MQTT broker")
        mqtt.add_metric([], float(self._mqtt_connected))
        yield mqtt


class _LinkMetrics:
    """How each platform's link keeps up: delay, backlog, drops, long outages."""

    def __init__(self, labels: list[str]) -> None:
        self.congested = GaugeMetricFamily(
            "mqttrelay_stream_congested",
            "The link to the platform is too slow: whole keyframe groups are dropped",
            labels=labels,
        )
        self.delay = GaugeMetricFamily(
            "mqttrelay_stream_delay_seconds",
            "How far behind OBS the platform is fed",
            labels=labels,
        )
        self.backlog = GaugeMetricFamily(
            "mqttrelay_stream_backlog_bytes", "Bytes waiting for the platform's link", labels=labels
        )
        self.dropped = GaugeMetricFamily(
            "mqttrelay_stream_dropped_ratio",
            "Share of the stream dropped for a slow link over the last 30 s",
            labels=labels,
        )
        self.problem = GaugeMetricFamily(
            "mqttrelay_stream_problem", "A long outage: still tried, but down", labels=labels
        )

    def add(self, state: StreamState) -> None:
        self.congested.add_metric([state.id], float(state.status == "congested"))
        self.delay.add_metric([state.id], (state.delay_ms or 0) / 1000)
        self.backlog.add_metric([state.id], float(state.backlog_bytes or 0))
        self.dropped.add_metric([state.id], state.dropped_share or 0.0)
        self.problem.add_metric([state.id], float(state.problem is not None))

    def families(self) -> list[GaugeMetricFamily]:
        return [self.congested, self.delay, self.backlog, self.dropped, self.problem]


def _profile_metrics(router: Router) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    labels = ["profile"]
    running = GaugeMetricFamily("mqttrelay_profile_running", "Its encoder runs", labels=labels)
    speed = GaugeMetricFamily(
        "mqttrelay_profile_speed", "Media time per wall time (below 1: behind)", labels=labels
    )
    cpu = GaugeMetricFamily("mqttrelay_profile_cpu_percent", "Its encoder's CPU", labels=labels)
    dropped = CounterMetricFamily(
        "mqttrelay_profile_dropped_frames", "Frames its encoder dropped", labels=labels
    )
    restarts = CounterMetricFamily(
        "mqttrelay_profile_restarts", "Encoder restarts after errors", labels=labels
    )
    for state in router.profiles():
        running.add_metric([state.profile], float(state.running))
        speed.add_metric([state.profile], state.speed or 0.0)
        cpu.add_metric([state.profile], state.cpu_percent)
        dropped.add_metric([state.profile], state.dropped_frames)
        restarts.add_metric([state.profile], state.restarts)
    yield from (running, speed, cpu, dropped, restarts)


def render_metrics(router: Router, mqtt_connected: bool) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RouterCollector(router, mqtt_connected))
    return generate_latest(registry), CONTENT_TYPE_LATEST
