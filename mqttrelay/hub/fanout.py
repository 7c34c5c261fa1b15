"""One stream of FLV tags handed to many relays: the codec headers and every tag
since the last keyframe are kept, so a relay attached now gets a decodable
picture at once, then every live tag through its own bounded queue (a slow
destination only ever fills its own). The hub feeds one with OBS's stream; each
profile's encoder feeds one with its output."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from mqttrelay.hub.subscription import DEFAULT_MAX_DELAY_MS, Subscription
from mqttrelay.lib.flv import FlvTag, encode_header

GOP_CACHE_MAX_MS = 12_000  # without a keyframe for this long, the cache is dropped
GOP_CACHE_MAX_BYTES = 32 * 1024 * 1024
# Live tags are gathered into one batch, shared by every relay and written to
# each pipe this often: per-tag, per-relay work was most of mqttrelay's own CPU
# at 50 relays (benchmarks/RESULTS.md, scale).
FEED_INTERVAL_S = 0.04


class FanOut:
    def __init__(self) -> None:
        self.header = encode_header(audio=True, video=True)
        self.metadata: FlvTag | None = None
        self.video_seq: FlvTag | None = None
        self.audio_seq: FlvTag | None = None
        self.gop: list[FlvTag] = []
        self._gop_bytes = 0
        self.subs: list[Subscription] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._batch: list[bytes] = []  # live tags not yet written to the relays
        self._batch_audio: list[bytes] = []  # its audio tags, for a relay skipping video
        self._batch_timestamp = 0
        self._batch_keyframe = False  # the batch starts a keyframe group
        self._batch_frames = 0  # its video frames

    def subscribe(
        self,
        pipe: asyncio.StreamWriter,
        on_wake: Callable[[], None],
        max_delay_ms: int = DEFAULT_MAX_DELAY_MS,
    ) -> Subscription:
        """Feed a relay's stdin: the cached keyframe group at once, then live tags."""
        sub = Subscription(pipe, on_wake, max_delay_ms)
        self.flush()  # the batch's tags are in the cached group too: none twice
        if self.gop:
            self._send_start(sub, self.gop[0].timestamp)
            for tag in self.gop:
                sub.put(
                    tag.timestamp, tag.encode(), keyframe=tag.is_keyframe, frames=int(tag.is_video)
                )
            sub.flush()
        self.subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self.subs.remove(sub)

    def drop_cache(self) -> None:
        """The cached group is no longer decodable from here (a new session)."""
        self.gop, self._gop_bytes = [], 0

    def reset(self) -> None:
        """A new stream starts (an encoder's next run): its own headers follow."""
        self.metadata = self.video_seq = self.audio_seq = None
        self.drop_cache()

    def put(self, tag: FlvTag) -> None:
        """A tag with its final timestamp: kept as the stream's state and forwarded."""
        if tag.is_metadata:
            # Only new relays get it: an attached relay takes a second one for a new stream.
            self.metadata = tag
            return
        if tag.is_sequence_header:
            if tag.is_video:
                self.video_seq = tag
            else:
                self.audio_seq = tag
        elif tag.is_keyframe:
            self.gop = [tag]
            self._gop_bytes = len(tag.data)
        elif self.gop:
            self.gop.append(tag)
            self._gop_bytes += len(tag.data)
            too_long = tag.timestamp - self.gop[0].timestamp > GOP_CACHE_MAX_MS
            if too_long or self._gop_bytes > GOP_CACHE_MAX_BYTES:
                self.drop_cache()
        self._forward(tag)

    def _send_start(self, sub: Subscription, timestamp: int) -> None:
        """FLV header and codec headers, stamped at the group's start."""
        sub.put(timestamp, self.header, keep=True)
        for header in (self.metadata, self.video_seq, self.audio_seq):
            if header is not None:
                sub.put(timestamp, header.with_timestamp(timestamp).encode(), keep=True)
        sub.started = True

    def _forward(self, tag: FlvTag) -> None:
        if not self.subs:
            return
        if tag.is_keyframe:
            # a keyframe starts a batch of its own: relays waiting for one start here,
            # and a relay that fell behind may resume here (subscription.py)
            self.flush()
            for sub in self.subs:
                if not sub.started:
                    self._send_start(sub, tag.timestamp)
        if tag.is_sequence_header:
            # a new session's codec headers go in a chunk of their own, never dropped
            self.flush()
            for sub in self.subs:
                if sub.started:
                    sub.send(tag.timestamp, tag.encode(), keep=True, frames=0)
            return
        if not self._batch:
            self._batch_timestamp = tag.timestamp
            self._batch_keyframe = tag.is_keyframe
        encoded = tag.encode()
        self._batch.append(encoded)
        if tag.is_audio:
            self._batch_audio.append(encoded)
        elif tag.is_video:
            self._batch_frames += 1
        if self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(FEED_INTERVAL_S, self.flush)

    def flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._batch:
            return
        batch = b"".join(self._batch)
        audio = b"".join(self._batch_audio)
        frames, self._batch_frames = self._batch_frames, 0
        self._batch.clear()
        self._batch_audio.clear()
        for sub in self.subs:
            if sub.started:
                sub.send(
                    self._batch_timestamp, batch, self._batch_keyframe, audio=audio, frames=frames
                )

    def disconnect_all(self, reason: str) -> None:
        """Every relay on this stream restarts (its feed broke): they say why."""
        for sub in self.subs:
            sub.fail(reason)
        self.subs.clear()

    def close(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
