"""TEST DOUBLE of the serving contract, used only until the `serving` branch (model.serving) is merged.

It is not the product: it exists so the workflow tests can deploy a real model version and ask it
real questions through the serving interface of docs/serving.md (MODEL_URI, PORT; GET /ready,
POST /predict {"text"}; X-Model-Version). It loads the model exactly as the product does (model.pyfunc). When
`model.serving` is importable the tests run that instead (see conftest.serving_command).
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from model.pyfunc import load_classifier


def main() -> int:
    uri = os.environ.get("MODEL_URI", "")
    if not uri:
        print("MODEL_URI is not set", file=sys.stderr)
        return 3
    classifier = load_classifier(uri)
    version = uri.rstrip("/").rsplit("/", 1)[-1]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            return

        def _send(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Model-Version", version)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path in ("/ready", "/health"):
                self._send(200, {"status": "ok", "model_version": version})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path != "/predict":
                self._send(404, {"error": "not found"})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                text = body["text"]
                if not isinstance(text, str) or not text.strip():
                    raise ValueError("text must be a non-empty string")
            except (ValueError, KeyError, TypeError) as exc:
                self._send(422, {"error": str(exc)})
                return
            intents, confidences = classifier.predict_top1([text])
            self._send(200, {"intent": intents[0], "confidence": float(confidences[0]), "model_version": version})

    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Handler)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
