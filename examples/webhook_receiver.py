"""A receiver for vod-ingest's webhooks that verifies their signatures (Standard Webhooks),
with Python's standard library only.

    WEBHOOK_SECRET=whsec_... python3 examples/webhook_receiver.py 8000

Point a key at it: `vod-ingest api-key update <id> --webhook-url http://<host>:8000/hooks/vod`.
It prints one line per verified event and answers 401 to anything else. In production, prefer
the official `standardwebhooks` library (PyPI, npm, ...), which does the same.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = base64.b64decode(os.environ["WEBHOOK_SECRET"].removeprefix("whsec_"))
TOLERANCE = 5 * 60  # seconds: older (or future) timestamps are replays
seen = set()  # webhook-ids handled: a retry of a handled event is acknowledged, not redone


def verified(headers, body: bytes) -> bool:
    msg_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(SECRET, signed, hashlib.sha256).digest()).decode()
    # Several signatures, space-separated, while a secret is being rotated: one must match.
    return any(
        hmac.compare_digest(sig.removeprefix("v1,"), expected)
        for sig in headers.get("webhook-signature", "").split()
        if sig.startswith("v1,")
    )


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if not verified(self.headers, body):
            self.send_response(401)
            self.end_headers()
            return
        event = json.loads(body)
        if self.headers["webhook-id"] not in seen:
            seen.add(self.headers["webhook-id"])
            data = event["data"]
            print("verified", event["type"], data["job_id"], data.get("media_id"),
                  "playable" if data.get("playable") else "", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8000), Handler)
print("listening on", server.server_address[1], flush=True)
server.serve_forever()
