"""The built-in RTMP ingest (ingest.listen): OBS, ffmpeg, GStreamer publish
here and the hub gets their tags in-process, with no nginx and no tap.

handshake, chunks, amf0, media and session are pure (bytes in, bytes and
events out); server.py is the asyncio part."""
