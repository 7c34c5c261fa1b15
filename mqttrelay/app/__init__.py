"""The composition root: build() (compose.py) makes every part from config.yaml's
sections and wires them, nothing started; run() (serve.py) starts them in order
and stops them in reverse; runtime.py changes them while running (a reload, the
page's settings); engine.py makes the data path of an ingest mode."""

from mqttrelay.app.compose import build
from mqttrelay.app.serve import check_api_exposure, run
from mqttrelay.app.service import Service, StartupError

__all__ = ["Service", "StartupError", "build", "check_api_exposure", "run"]
