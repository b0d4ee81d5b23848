"""Run one Lambda handler in a fresh interpreter, timed in AWS's two phases.

`python -m localaws.lambda_worker <handler path> <timeout s>`: the event JSON on stdin,
{"result", "errored"} on stdout. Init (importing the handler's module) has its own INIT_SECONDS,
outside the function's Timeout; an init that runs longer is repeated inside the invocation in AWS, so
its overrun counts against the Timeout here. A handler past its deadline ends in Sandbox.Timedout.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
import traceback
from typing import Any

INIT_SECONDS = 10.0  # AWS's limit on a function's init phase, which its Timeout does not include
_ANSWER = threading.Lock()


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(exc)[:20000],
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_exception(exc)[-8:],
    }


def _answer(out: dict[str, Any]) -> None:
    """Print the one answer and exit at once: whichever of the handler and the deadline comes first wins."""
    with _ANSWER:
        sys.stderr.flush()  # the handler's logs; os._exit flushes nothing
        print(json.dumps(out, default=str), flush=True)
        os._exit(0)


def main() -> int:
    path, timeout = sys.argv[1], float(sys.argv[2])
    module_name, _, attr = path.rpartition(".")
    started = time.monotonic()
    try:
        handler, init_error = getattr(importlib.import_module(module_name), attr), None
    except Exception as exc:  # an import error is an init error, reported on the invocation as AWS does
        handler, init_error = None, exc
    budget = timeout - max(0.0, time.monotonic() - started - INIT_SECONDS)
    message = f"Task timed out after {timeout:.2f} seconds"
    timed_out = {"errorMessage": message, "errorType": "Sandbox.Timedout", "stackTrace": []}
    deadline = threading.Timer(max(0.0, budget), _answer, args=({"result": timed_out, "errored": True},))
    deadline.daemon = True
    deadline.start()
    event = json.loads(sys.stdin.read() or "{}")
    if handler is None:
        _answer({"result": _error(init_error or RuntimeError("no handler")), "errored": True})
    try:
        _answer({"result": handler(event, None), "errored": False})
    except Exception as exc:
        _answer({"result": _error(exc), "errored": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
