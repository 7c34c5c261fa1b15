"""Hypothesis over the destination routes of a running `mqttrelay run`: any
body gets an answer under 500, config.yaml stays a valid config that lists
exactly the streams the service runs, and no key is ever in an answer."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqttrelay.config import load_config

from .kit import CANARY_KEY, RunningService, write_offline_config

pytestmark = pytest.mark.integration

_text = st.text(st.characters(codec="utf-8"), max_size=30)
_urls = st.one_of(
    _text,
    st.sampled_from(["rtmp://127.0.0.1:9/a", "srt://127.0.0.1:9", "rtmps://[::1]:9/x/", "-i x"]),
)
_keys = st.one_of(st.none(), _text, st.just(f"k-{CANARY_KEY}"), st.just("${HOME}"))
_ids = st.one_of(st.from_regex(r"[a-z0-9_-]{1,6}", fullmatch=True), _text, st.just("all"))
_new = st.fixed_dictionaries(
    {"id": _ids, "url": _urls},
    optional={"name": _text, "key": _keys, "enabled": st.just(False), "junk": st.integers()},
)
_patch = st.fixed_dictionaries(
    {}, optional={"name": _text, "url": _urls, "key": _keys, "version": st.integers(-5, 10**6)}
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    folder = tmp_path_factory.mktemp("fuzz-destinations")
    svc = RunningService(write_offline_config(folder, ["facebook"]), folder / "service.log")
    yield svc
    assert svc.stop() == 0
    log = svc.log.read_text()
    assert CANARY_KEY not in log and "Traceback" not in log
    assert CANARY_KEY not in (folder / "state.json").read_text()


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    action=st.sampled_from(["post", "patch", "delete"]),
    new=_new,
    patch=_patch,
    target=st.sampled_from(["facebook", "nope", "x"]),
)
def test_random_edits_keep_the_file_and_the_service_in_step(
    service: RunningService, action: str, new: dict[str, object], patch: dict[str, object],
    target: str,
) -> None:  # fmt: skip
    with httpx.Client(base_url=service.url, timeout=30) as client:
        if action == "post":
            r = client.post("/api/streams", json=new)
        elif action == "patch":
            r = client.patch(f"/api/streams/{target}", json=patch)
        else:
            r = client.delete(f"/api/streams/{target}")
        assert r.status_code < 500, r.text
        assert r.status_code in (200, 201, 204, 404, 409, 422), r.text
        assert CANARY_KEY not in r.text
        running = [s["id"] for s in client.get("/api/streams").json()]
    assert [s.id for s in load_config(service.config).streams] == running
