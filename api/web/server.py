"""Serving: migrations once, then one or N worker processes on one port."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from aiohttp.http_exceptions import HttpProcessingError

from api.settings import Settings
from api.web.appkeys import DRAINING_KEY

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("graphgate")


class ClientFaultFilter(logging.Filter):
    """aiohttp logs a malformed request (a bad header, a garbled request line) at ERROR with
    a traceback: that is the client's fault, which an outsider can trigger at will. Such a
    record becomes one WARNING line without the traceback; the client still gets its 400."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            # Not the parser's message: it may quote the client's bytes (a header, a token).
            record.msg, record.args = "malformed HTTP request refused (%s)", (type(exc).__name__,)
            record.exc_info, record.exc_text = None, None
        return True


def setup_logging(log_format: str = "text") -> None:
    """The process's log handler (infra.logs), and aiohttp's server log told apart from ours."""
    from api.infra.logs import configure_logging

    configure_logging(log_format)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientFaultFilter) for f in server.filters):
        server.addFilter(ClientFaultFilter())


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
LISTEN_BACKLOG = 2048  # connections the kernel queues for accept() per worker


def return_big_buffers_to_the_system() -> bool:
    """Fix glibc's mmap threshold at 128 KiB: else, after the first free of an argon2 buffer
    (19 MiB), it rises and later buffers stay in the heap. True when applied (glibc only)."""
    import ctypes

    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False  # (the operator's own setting wins)
    libc = ctypes.CDLL(None)  # the symbols already loaded: libc's
    mallopt = getattr(libc, "mallopt", None)  # musl has no such knob
    return mallopt is not None and bool(mallopt(M_MMAP_THRESHOLD, 128 * 1024))


def run_worker(settings: Settings, host: str, port: int, reuse_port: bool) -> None:
    """One process serving the app until SIGTERM/SIGINT (then it drains and exits 0)."""
    from aiohttp import web

    from api.web.app import create_app

    setup_logging(settings.log_format)
    return_big_buffers_to_the_system()
    # asyncio's own loop, not uvloop, on purpose: at 500 saturating connections both served
    # the same requests per second here, but uvloop left some connections (and every new one)
    # waiting up to 10 s - p99 5.5 s against 0.7 s (bench/reliability/README.md).
    app = create_app(settings)

    async def announce(_app: web.Application) -> None:
        log.info("worker %d started", os.getpid())

    app.on_startup.append(announce)
    if settings.shutdown_delay:
        app.on_startup.append(unready_before_closing(settings.shutdown_delay))
    web.run_app(
        app,
        host=host,
        port=port,
        reuse_port=reuse_port,
        # aiohttp's 128: a flood's new connections overflow it, and the kernel then drops a
        # sign-in's connection too (its client retries in 1, 3, 7 s). The kernel caps it at
        # net.core.somaxconn (4096 on current kernels).
        backlog=LISTEN_BACKLOG,
        shutdown_timeout=settings.shutdown_timeout,
        print=None,
        access_log=None,  # request lines would carry GET query strings; tokens never, but keep quiet
        handle_signals=True,
    )
    log.info("worker %d stopped", os.getpid())


def unready_before_closing(
    delay: float,
) -> Callable[[web.Application], Coroutine[None, None, None]]:
    """An on_startup hook: SIGTERM first makes /readyz answer 503 for `delay` seconds while
    requests are still served, so the load balancer takes this worker out of rotation before
    its port closes (a closed port refuses what is still on its way); then the usual graceful
    exit. A second SIGTERM skips the rest of the wait, never the drain. SIGINT stays
    immediate."""
    from aiohttp import web

    async def install(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        draining = app[DRAINING_KEY]

        timer: asyncio.TimerHandle | None = None
        exiting = False

        def exit_gracefully() -> None:
            nonlocal exiting
            if timer is not None:
                timer.cancel()  # else it fires into the drain and cuts it off
            exiting = True
            raise web.GracefulExit  # what aiohttp's own SIGTERM handler raises

        def on_sigterm() -> None:
            nonlocal timer
            if exiting:  # already draining: a GracefulExit now would cut the drain off
                return
            if draining.is_set():
                exit_gracefully()
            draining.set()
            log.info("worker %d draining: not ready, closing in %s s", os.getpid(), delay)
            timer = loop.call_later(delay, exit_gracefully)

        # Replaces the handler run_app installed (it installs its own before start-up).
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)

    return install


def serve(settings: Settings, host: str, port: int, workers: int) -> int:
    """Apply pending migrations, then serve with `workers` processes sharing the port."""
    from api.auth.keys import KeyRing
    from api.db import connection as db
    from api.infra.metrics import share_metrics_between_workers

    KeyRing.from_settings(settings)  # a bad key folder stops us before migrating or forking
    asyncio.run(db.migrate(settings))
    log.info("serving on http://%s:%s/graphql with %d worker(s)", host, port, workers)
    if workers == 1:
        run_worker(settings, host, port, reuse_port=False)
        return 0
    share_metrics_between_workers()  # /metrics then sums every worker, whichever answers
    # N processes bind the port with SO_REUSEPORT; the kernel spreads connections over them.
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=run_worker, args=(settings, host, port, True), name=f"worker-{n}")
        for n in range(workers)
    ]
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                proc.terminate()  # SIGTERM: each worker drains its in-flight requests

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for proc in procs:
        proc.start()
    if stopping:  # a signal came while starting
        forward(signal.SIGTERM, None)
    return _supervise(procs, lambda: stopping)


def _supervise(procs: Sequence[BaseProcess], stopping: Callable[[], bool]) -> int:
    """Wait for the workers. One that dies unasked takes the others down (exit 1), so the
    orchestrator restarts the whole service instead of it running on fewer workers."""
    running = list(procs)
    while running:
        multiprocessing.connection.wait([proc.sentinel for proc in running])
        for proc in [proc for proc in running if not proc.is_alive()]:
            running.remove(proc)
            if not stopping() and proc.exitcode != 0:
                log.error("%s exited with %s; stopping the others", proc.name, proc.exitcode)
                for other in running:
                    other.terminate()
    # A worker stopped by the forwarded SIGTERM before it could handle it had nothing to drain.
    fine = (0, -signal.SIGTERM) if stopping() else (0,)
    return 0 if all(proc.exitcode in fine for proc in procs) else 1
