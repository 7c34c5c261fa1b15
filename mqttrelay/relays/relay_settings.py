"""A relay's settings: the ffmpeg section's paths and the timings of its watch and
of its backoff (RelayFactory fills them; tests and benchmarks shorten them)."""

from __future__ import annotations

from dataclasses import dataclass

from mqttrelay.lib.redact import Redactor


@dataclass(frozen=True)
class RelaySettings:
    ffmpeg: str
    owner: str
    redactor: Redactor  # masks every line read from ffmpeg and stunnel
    ingest_url: str
    hold_s: float = 30.0
    stop_grace_s: float = 3.0
    connect_timeout_s: float = 10.0  # input available to first bytes the platform took
    stunnel: str | None = None  # rtmps:// through this stunnel binary (tls_tunnel.py)
    stall_s: float = 10.0  # no output growth while input flows
    backoff_first_s: float = 0.5
    backoff_max_s: float = 30.0  # tries go on for as long as it is switched on
    stable_s: float = 30.0  # a run this long forgets earlier failures, and returns at once
    # a destination down this many tries, or this long, is reported as a problem
    max_failures: int = 8
    problem_after_s: float = 60.0
