"""Run one Lambda handler in a fresh interpreter, in AWS's two phases.

Init: import the handler's module, then print INIT_DONE (AWS gives init its own 10 s, outside the
function's Timeout). Invoke: the event JSON on stdin, {"result", "errored"} on stdout.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from typing import Any

INIT_DONE = "__localaws_init_done__"


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(exc)[:20000],
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_exception(exc)[-8:],
    }


def main() -> int:
    path = sys.argv[1]
    module_name, _, attr = path.rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # an import error is an init error, reported on the invocation as AWS does
        handler, init_error = None, exc
    print(INIT_DONE, flush=True)
    event = json.loads(sys.stdin.read() or "{}")
    if handler is None:
        out = {"result": _error(init_error), "errored": True}
    else:
        try:
            out = {"result": handler(event, None), "errored": False}
        except Exception as exc:
            out = {"result": _error(exc), "errored": True}
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
