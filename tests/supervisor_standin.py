"""A stand-in for the Supervisor's API on loopback: `GET /services/mqtt` with the
add-on's bearer token answers the broker, as the Supervisor does for an add-on
with `services: [mqtt:want]`; anything else is 401 or 404.

Usage: python tests/supervisor_standin.py PORT TOKEN BROKER_PORT"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(token: str, broker_port: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {token}":
                self._answer(401, {"result": "error", "message": "Unauthorized"})
            elif self.path == "/services/mqtt":
                data = {
                    "host": "127.0.0.1",
                    "port": broker_port,
                    "ssl": False,
                    "protocol": "3.1.1",
                    "username": "addons",
                    "password": "standin-mqtt-password",
                }
                self._answer(200, {"result": "ok", "data": data})
            else:
                self._answer(404, {"result": "error", "message": "not here"})

        def _answer(self, status: int, body: object) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            print(f"{self.command} {self.path} {status}", flush=True)

        def log_message(self, *_: object) -> None:
            pass

    return Handler


if __name__ == "__main__":
    port, token, broker = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    ThreadingHTTPServer(("127.0.0.1", port), make_handler(token, broker)).serve_forever()
