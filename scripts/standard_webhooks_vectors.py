"""Signing vectors for the app webhooks, made by the official Standard Webhooks library
(`pip install standardwebhooks`), so that our signer (src/sign/standard_webhooks.rs) is pinned
to an implementation that is not ours. Writes JSON to stdout:

    python3 scripts/standard_webhooks_vectors.py > tests/fixtures/standard_webhooks_vectors.json
"""
import datetime
import json

from standardwebhooks.webhooks import Webhook

CASES = [
    # The example of the specification's own libraries.
    ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'),
    ("whsec_" + "A" * 43 + "=", "msg_1", 1700000000, '{"type":"upload.completed","timestamp":"2023-11-14T22:13:20Z","data":{}}'),
    ("whsec_3q2+7w==", "msg_42", 1796601600, '{"type":"media.playable","data":{"title":"caf\u00e9 \u89c6\u9891"}}'),
    ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_empty", 0, ""),
]

vectors = []
for secret, msg_id, ts, body in CASES:
    when = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    vectors.append({
        "secret": secret,
        "id": msg_id,
        "timestamp": ts,
        "body": body,
        "signature": Webhook(secret).sign(msg_id, when, body),
    })
print(json.dumps({"source": "standardwebhooks " + __import__("importlib.metadata").metadata.version("standardwebhooks"), "vectors": vectors}, indent=2, ensure_ascii=False))
