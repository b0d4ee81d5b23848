"""Which HTTP protocol uvicorn runs: the fast path (model/serving/http_protocol.py), or uvicorn's own.

The fast path subclasses uvicorn's httptools protocol, which is not a public API: a uvicorn release may
rename what it overrides or fix response writing in code the fast path replaces, and nothing would say
so. So it runs only where it was tested: uvicorn is pinned exactly in pyproject.toml
(tests/serving/test_fast_path.py keeps that pin and TESTED_UVICORN equal), and with any other uvicorn
installed, or the module failing to import, or ESTEIRA_SERVING_FAST_PATH=0, the service runs plain uvicorn
(httptools) and says so in its log. Both paths answer the same contract: the serving suite runs on
each (tests/serving/conftest.py).
"""

from __future__ import annotations

import logging
from typing import Any

import uvicorn

from model.serving.state import ServingState

log = logging.getLogger("esteira.serving")

TESTED_UVICORN = "0.54.0"
PLAIN = "httptools"


def http_protocol(enabled: bool, state: ServingState, installed: str = uvicorn.__version__) -> Any:
    """uvicorn.Config's `http`: the fast path's protocol class when it is safe to run, else "httptools"."""
    if not enabled:
        log.info("http path: plain uvicorn", extra={"reason": "ESTEIRA_SERVING_FAST_PATH=0", "uvicorn": installed})
        return PLAIN
    if installed != TESTED_UVICORN:
        reason = f"uvicorn {installed} is installed; the fast path is tested on uvicorn {TESTED_UVICORN} only"
        log.warning("http path: plain uvicorn", extra={"reason": reason, "uvicorn": installed})
        return PLAIN
    try:
        from model.serving.http_protocol import ServingHttpProtocol
    except ImportError as exc:  # uvicorn moved what the fast path builds on
        log.warning("http path: plain uvicorn", extra={"reason": f"fast path import failed: {exc}"})
        return PLAIN
    log.info("http path: fast", extra={"uvicorn": installed})
    return ServingHttpProtocol.for_state(state)
