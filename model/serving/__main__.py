"""`python -m model.serving`: one uvicorn worker (scale out with tasks, not processes).

Why a Server subclass: /ready must start failing the moment SIGTERM arrives, so the load balancer stops
routing here while uvicorn finishes the requests already in flight.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Generator
from types import FrameType

import uvicorn

from model.serving.app import create_app
from model.serving.fast_path import http_protocol
from model.serving.logs import configure_logging
from model.serving.settings import ServingSettings
from model.serving.state import ServingState

log = logging.getLogger("esteira.serving")


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServingState):
        super().__init__(config)
        self.serving_state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.serving_state.shutting_down = True
        log.info("signal received: draining", extra={"signal": sig, "in_flight": self.serving_state.in_flight})
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Like uvicorn's, but after a graceful drain exit 0 instead of re-raising SIGTERM (exit 143)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def main() -> None:
    settings = ServingSettings.from_env()
    configure_logging(settings.log_level)
    state = ServingState(settings)
    app = create_app(settings, state)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        loop="uvloop",
        http=http_protocol(settings.fast_path, state),  # POST /predict answered in the protocol, if safe
        proxy_headers=False,  # nothing reads the client address (no access log); one ASGI layer less
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_keep_alive=settings.keep_alive_s,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s) or None,
        server_header=False,
    )
    log.info("starting", extra={"host": settings.host, "port": settings.port, "model_uri": settings.model_uri})
    _Server(config, state).run()


if __name__ == "__main__":
    main()
