"""STOP without a login, from the treatment-room kiosk only.

The on-screen STOP must work on the login screen, after a logout and after a token expired: a
practitioner never has to log in to stop a laser. Only the configured kiosk addresses (loopback
by default: the touchscreen's browser runs on the same machine) may STOP without a token; from
anywhere else STOP needs any valid token. Tokenless STOPs are rate-limited per address (a flood
is answered 429, never queued) and audited with the client's address.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from devicectl.core.auth import User

#: tokenless STOPs a kiosk address may send in ``WINDOW_S`` (the first always goes through)
KIOSK_STOPS_PER_WINDOW = 5
WINDOW_S = 1.0


class KioskStopGate:
    """Who may STOP without a token, and how often."""

    def __init__(self, addresses: list[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.addresses = set(addresses)
        self.clock = clock
        self._recent: dict[str, deque[float]] = {}

    def is_kiosk(self, address: str | None) -> bool:
        return address is not None and address in self.addresses

    def allow(self, address: str) -> bool:
        """Whether one more tokenless STOP from ``address`` is within the rate."""
        now = self.clock()
        recent = self._recent.setdefault(address, deque())
        while recent and now - recent[0] > WINDOW_S:
            recent.popleft()
        if len(recent) >= KIOSK_STOPS_PER_WINDOW:
            return False
        recent.append(now)
        return True

    @staticmethod
    def user(address: str) -> User:
        """The actor a tokenless STOP is recorded under."""
        return User(0, f"kiosk@{address}", "kiosk", False)
