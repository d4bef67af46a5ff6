"""Consoles: a laser armed from a screen is disarmed when that screen goes away.

A console is a login token with its live WebSocket(s). Arming a laser (``POST .../arm``) ties
the arm to the token that asked for it. The laser is stopped (a verified STOP, audited as
``console lost by <user>``) when:

* the last WebSocket opened with that token closes (the screen was closed, reloaded or lost
  its network): a reload re-arms nothing, the practitioner logs in and arms again;
* the token ends: logout, or its expiry while the laser is still armed.

A cryo freeze is different: it runs to its programmed end (the unit's own timer ends it, which
is safer than a valve closed by a lost screen at an unknown point of the cycle). Either way
every other console is told (hub message ``console_lost``: who, which devices were stopped,
which freezes continue).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devicectl.core.auth import User

if TYPE_CHECKING:
    from devicectl.core.service import Service

log = logging.getLogger(__name__)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class _Arm:
    token: str  #: the token's digest (tokens themselves are never kept)
    user: User
    expiry: asyncio.TimerHandle | None = None


class Consoles:
    def __init__(self, service: Service) -> None:
        self.service = service
        self._sockets: dict[str, int] = {}  #: token digest -> open WebSockets
        self._arms: dict[str, _Arm] = {}  #: device -> who armed it (or started its freeze)
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ WebSockets
    def opened(self, token: str) -> None:
        digest = _digest(token)
        self._sockets[digest] = self._sockets.get(digest, 0) + 1

    def closed(self, token: str, user: User) -> None:
        """A WebSocket closed: the console is lost when it was its token's last one."""
        digest = _digest(token)
        left = self._sockets.get(digest, 0) - 1
        if left > 0:
            self._sockets[digest] = left
            return
        self._sockets.pop(digest, None)
        self._lost(digest, user, "its screen closed")

    def open_sockets(self, token: str) -> int:
        return self._sockets.get(_digest(token), 0)

    # ------------------------------------------------------------------ arming
    async def arming(self, token: str, user: User, device: str) -> None:
        """``user`` (logged in with ``token``) arms ``device`` or starts its freeze: tie it to the token,
        and STOP a laser still armed when the token expires."""
        digest = _digest(token)
        previous = self._arms.pop(device, None)
        if previous is not None and previous.expiry is not None:
            previous.expiry.cancel()
        arm = _Arm(digest, user)
        self._arms[device] = arm
        expires = await self.service.accounts.token_expiry(token)
        if expires is not None and self._arms.get(device) is arm:
            loop = asyncio.get_running_loop()
            delay = max(0.0, expires - time.time())
            arm.expiry = loop.call_later(delay, self._expired, device, arm)

    def token_ended(self, token: str, user: User, why: str = "its login ended") -> None:
        """Logout: whatever that token armed is stopped."""
        digest = _digest(token)
        self._sockets.pop(digest, None)
        self._lost(digest, user, why)

    def _expired(self, device: str, arm: _Arm) -> None:
        if self._arms.get(device) is arm:
            self._lost(arm.token, arm.user, "its login expired", only=device)

    # ------------------------------------------------------------------ the console is gone
    def _lost(self, digest: str, user: User, why: str, only: str | None = None) -> None:
        stopped: list[str] = []
        freezing: list[str] = []
        for device, arm in list(self._arms.items()):
            if arm.token != digest or (only is not None and device != only):
                continue
            del self._arms[device]
            if arm.expiry is not None:
                arm.expiry.cancel()
            supervisor = self.service.supervisors.get(device)
            if supervisor is None:
                continue
            if supervisor.config.type == "laser":
                if supervisor.kernel.armed:
                    stopped.append(device)
            elif getattr(supervisor.kernel, "treating", False):
                freezing.append(device)
        if not stopped and not freezing:
            return
        if stopped:
            origin = f"console lost ({why})"
            task = asyncio.get_running_loop().create_task(self._stop(user, origin, stopped))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.service.hub.publish({"type": "console_lost", "user": user.name, "reason": why, "stopped": stopped,
                                  "freezing": freezing,
                                  "message": f"{user.name}'s console was lost ({why})"
                                             + (f": {', '.join(stopped)} stopped" if stopped else "")
                                             + (f"; the freeze on {', '.join(freezing)} runs to its programmed end"
                                                if freezing else "")})

    async def _stop(self, user: User, origin: str, devices: list[str]) -> None:
        for device in devices:
            try:
                await self.service.sessions.stop(user, origin, device)
            except Exception:  # the STOP was decided in stop(); a failure to confirm is escalated there
                log.exception("STOP of %s after a lost console", device)

    async def close(self) -> None:
        for arm in self._arms.values():
            if arm.expiry is not None:
                arm.expiry.cancel()
        self._arms.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
