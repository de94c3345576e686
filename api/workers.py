"""`cim serve --workers N`: N server processes, each listening on its own socket bound to the same address with
``SO_REUSEPORT``, so that the kernel spreads connections over them by address hash.

With one shared listening socket (uvicorn's own ``--workers``) the process that wakes first accepts a whole burst
of connections: in our benchmark one of two workers took 59 of wrk's 64 and the other sat idle. A worker that
dies is started again; one that dies within ``STARTUP_GRACE`` seconds of its start (a scene that cannot be
opened, say) stops the server with its exit code.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
import time

__all__ = ["STARTUP_GRACE", "reuseport_socket", "serve_workers"]

log = logging.getLogger(__name__)
STARTUP_GRACE = 10.0


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` that other processes may bind too (``SO_REUSEPORT``)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _worker(host: str, port: int, options: dict) -> None:
    import uvicorn

    sock = reuseport_socket(host, port)
    uvicorn.Server(uvicorn.Config("api.app:create_app", factory=True, **options)).run(sockets=[sock])


def serve_workers(n: int, host: str, port: int, options: dict) -> int:
    """Run ``n`` workers (``api.app:create_app`` under uvicorn with ``options``) until SIGINT or SIGTERM, and
    return the exit code. The address is bound here first, so a port in use fails at once with OSError."""
    probe = reuseport_socket(host, port)        # never listens: only checks the address and holds it
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def start() -> tuple[multiprocessing.Process, float]:
        p = ctx.Process(target=_worker, args=(host, port, options), name="cim-serve-worker")
        p.start()
        return p, time.monotonic()

    def on_signal(signum, frame) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    workers = [start() for _ in range(n)]
    log.info("started %d worker processes (%s) on %s:%d", n, ", ".join(str(p.pid) for p, _ in workers), host, port)
    code = 0
    try:
        while not stop.wait(0.5):
            for i, (p, started) in enumerate(workers):
                if p.is_alive():
                    continue
                if time.monotonic() - started < STARTUP_GRACE:
                    log.error("worker %d exited with code %s while starting: stopping", p.pid, p.exitcode)
                    code = p.exitcode or 1
                    stop.set()
                    break
                log.warning("worker %d exited with code %s: starting another", p.pid, p.exitcode)
                workers[i] = start()
    finally:
        for p, _ in workers:
            if p.is_alive():
                p.terminate()                   # SIGTERM: uvicorn finishes its requests and runs the shutdown
        for p, _ in workers:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join()
        probe.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code
