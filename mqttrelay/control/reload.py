"""What a config reload changes (pure): the router then applies it."""

from __future__ import annotations

from dataclasses import dataclass

from mqttrelay.config import Config, StreamConfig

# Sections a reload does not apply: they need a restart.
RESTART_SECTIONS = (
    "ingest",
    "ffmpeg",
    "mqtt",
    "api",
    "standby",
    "profiles",
    "state_file",
    "timezone",
)


@dataclass(frozen=True)
class ReloadResult:
    added: list[str]
    removed: list[str]
    changed: list[str]  # relay restarted (url, key, profile or source changed)
    renamed: list[str]  # only the name changed: relay untouched
    restart_required: list[str]  # config sections that only a restart applies

    def summary(self) -> str:
        restart = self.restart_required
        return (
            f"added {self.added or 'none'}, removed {self.removed or 'none'}, "
            f"restarted {self.changed or 'none'}, renamed {self.renamed or 'none'}"
            + (f"; restart needed for {', '.join(restart)}" if restart else "")
        )


@dataclass(frozen=True)
class ReloadPlan:
    added: list[StreamConfig]
    removed: list[str]
    changed: list[StreamConfig]  # url, key, profile or source changed: a new relay
    renamed: list[StreamConfig]  # anything else changed: the running relay keeps going
    restart_required: list[str]

    def result(self) -> ReloadResult:
        return ReloadResult(
            added=[s.id for s in self.added],
            removed=self.removed,
            changed=[s.id for s in self.changed],
            renamed=[s.id for s in self.renamed],
            restart_required=self.restart_required,
        )


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """Compare the running config with a new one, stream by stream."""
    running = {s.id: s for s in old.streams}
    added, changed, renamed = [], [], []
    for stream in new.streams:
        before = running.get(stream.id)
        if before is None:
            added.append(stream)
        elif _relay_fields(before) != _relay_fields(stream):
            changed.append(stream)
        elif before != stream:
            renamed.append(stream)
    return ReloadPlan(
        added=added,
        removed=[s for s in running if new.stream(s) is None],
        changed=changed,
        renamed=renamed,
        restart_required=[name for name in RESTART_SECTIONS if _needs_restart(old, new, name)],
    )


def _needs_restart(old: Config, new: Config, section: str) -> bool:
    if section == "profiles":  # a new profile is added at once; a changed one needs a restart
        return any(new.profiles.get(name) != profile for name, profile in old.profiles.items())
    return bool(getattr(old, section) != getattr(new, section))


def _relay_fields(stream: StreamConfig) -> tuple[object, ...]:
    """What the running relay was made with: a change needs a new one."""
    return (stream.url, stream.key, stream.profile, stream.source)
