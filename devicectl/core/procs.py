"""Child processes that die with the service, and ports that are either ours or an error.

``devicectl serve --simulate`` runs the simulated bench and Mosquitto as child processes. Each is
started with ``PR_SET_PDEATHSIG``: the kernel sends it SIGTERM the moment the service dies, even
by ``kill -9``, so no stale bench or broker is left to answer the next run's clients. A port
already taken is an error that names it, never a silent move to another port.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys

PR_SET_PDEATHSIG = 1


class PortTaken(RuntimeError):
    """A port the service must listen on is already in use; the message names it and what to do."""


def die_with_parent() -> None:
    """``preexec_fn`` of a child: SIGTERM when the parent dies (Linux); exits at once if the
    parent is already gone (it died between fork and this call)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os._exit(1)


def require_free_port(port: int, what: str, setting: str, host: str = "127.0.0.1") -> None:
    """Raise PortTaken naming ``port`` when something already listens there."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise PortTaken(
                f"port {port} ({what}) on {host} is already in use — perhaps by an earlier run that was not stopped "
                f"(see `ss -ltnp 'sport = :{port}'`); stop that process, or set `{setting}` to another port"
            ) from None
