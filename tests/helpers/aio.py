"""An aiocoap server (an independent CoAP implementation) in a thread of its own.

The server's asyncio loop runs in that thread; the test thread reaches it only
through ``call`` (a function run in the loop's thread) and ``stop``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from helpers.net import unused_udp_port

CallResult = TypeVar("CallResult")


class AioServer:
    """``aiocoap.Context.create_server_context(site)`` on 127.0.0.1:``port`` (a free one
    if ``port`` is 0), served by an event loop in a thread of its own.

    ``site`` is an ``aiocoap.resource.Site``; aiocoap must be installed (the callers
    skip with ``pytest.importorskip`` first).
    """

    def __init__(self, site: Any, port: int = 0) -> None:
        self.site = site
        self.port = port or unused_udp_port()
        self.loop = asyncio.new_event_loop()
        self._context: Any = None
        self._ready = threading.Event()
        self._stopped = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="aiocoap-server", daemon=True)

    @property
    def uri(self) -> str:
        return f"coap://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> AioServer:
        """Start the thread; return once the server is bound (raise what its start raised)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the aiocoap server did not start within {timeout} s")
        if self.error is not None:
            raise self.error
        return self

    def _serve(self) -> None:
        import aiocoap

        loop = self.loop
        try:
            self._context = loop.run_until_complete(
                aiocoap.Context.create_server_context(self.site, bind=("127.0.0.1", self.port))
            )
        except BaseException as exc:
            self.error = exc
            loop.close()
            return
        finally:
            self._ready.set()
        loop.run_forever()
        try:
            loop.run_until_complete(self._context.shutdown())
        finally:
            loop.close()

    def call(self, function: Callable[[], CallResult], timeout: float = 10.0) -> CallResult:
        """Run ``function()`` in the server's loop thread; return what it returned."""
        future: Future[CallResult] = Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (its socket closes) and end the thread; a second call
        does nothing."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.ident is None:  # never started
            self.loop.close()
            return
        if not self._thread.is_alive():  # its start failed: the loop is closed
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"the aiocoap server did not stop within {timeout} s")
