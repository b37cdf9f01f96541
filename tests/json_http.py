"""The part every stand-in HTTP API of the tests shares: quiet logs and JSON replies."""

from __future__ import annotations

import http.server
import json


class JSONHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that answers with JSON bodies and keeps the test output quiet."""

    def log_message(self, *args):
        pass

    def send_json(self, payload: dict, status: int = 200) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
