"""Run one Lambda handler in a fresh interpreter: event JSON on stdin, {"result", "errored"} on stdout."""

from __future__ import annotations

import importlib
import json
import sys
import traceback


def main() -> int:
    path = sys.argv[1]
    event = json.loads(sys.stdin.read() or "{}")
    module_name, _, attr = path.rpartition(".")
    try:
        result = getattr(importlib.import_module(module_name), attr)(event, None)
        out = {"result": result, "errored": False}
    except Exception as exc:
        out = {
            "result": {
                "errorMessage": str(exc)[:20000],
                "errorType": type(exc).__name__,
                "stackTrace": traceback.format_exception(exc)[-8:],
            },
            "errored": True,
        }
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
