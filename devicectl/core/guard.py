"""Brute-force guard: PIN guesses are slowed per client and locked per user *and* client.

* Per client address: after ``FREE_FAILURES`` wrong PINs (any user, login or PIN change) every
  further try waits ``2 ** (n - FREE_FAILURES)`` seconds (capped at ``MAX_DELAY_S``); a try
  before then is answered 429 with ``Retry-After``. A client's failures are forgotten after
  ``FORGET_S`` without one.
* Per user and client: ``USER_CLIENT_FAILURES`` wrong PINs lock that user *from that client*
  (423) for ``LOCK_S``, doubling at each further lock. A stranger guessing at the reception PC
  cannot lock the practitioner out of the treatment-room screen.
* Per user overall: each client's failures count toward the user's lock-out only up to
  ``USER_CLIENT_FAILURES`` (``counts_for_user``); the stored counter locks the user everywhere
  at ``USER_FAILURES`` (a guess spread over many addresses), until the lock ends or an admin unlocks.

Trivial PINs are refused (``weak_pin``): all one digit, an ascending or descending run, the
user's previous PIN; admins need at least ``ADMIN_MIN_DIGITS`` digits.

The in-memory counters start empty at each start of the service (the stored per-user counter does not).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

FREE_FAILURES = 5
MAX_DELAY_S = 15 * 60
FORGET_S = 60 * 60
USER_CLIENT_FAILURES = 5
LOCK_S = 15 * 60
USER_FAILURES = 20
ADMIN_MIN_DIGITS = 6
PIN_DIGITS = (4, 12)


def weak_pin(pin: str, role: str, previous: str | None = None) -> str | None:
    """Why ``pin`` is not acceptable for a user of ``role`` (None when it is)."""
    low = ADMIN_MIN_DIGITS if role == "admin" else PIN_DIGITS[0]
    if not pin.isdigit() or not low <= len(pin) <= PIN_DIGITS[1]:
        return f"a{'n admin' if role == 'admin' else ''} PIN is {low}-{PIN_DIGITS[1]} digits"
    if len(set(pin)) == 1:
        return "a PIN of one digit repeated is guessed first: choose another"
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(pin)}
    if steps in ({1}, {9}):
        return "a run of digits (1234, 9876) is guessed first: choose another"
    if previous is not None and pin == previous:
        return "the new PIN must differ from the previous one"
    return None


@dataclass
class _Client:
    failures: int = 0
    last: float = 0.0
    not_before: float = 0.0


@dataclass
class _Pair:
    failures: int = 0
    locks: int = 0
    locked_until: float = 0.0
    counted: int = 0  #: failures already counted toward the user's stored counter


@dataclass
class Guard:
    clock: Callable[[], float] = time.monotonic
    clients: dict[str, _Client] = field(default_factory=dict)
    pairs: dict[tuple[str, str], _Pair] = field(default_factory=dict)

    def check(self, name: str, client: str) -> tuple[int, str, int | None] | None:
        """Before a PIN is checked: None, or (status, message, Retry-After seconds) to answer."""
        now = self.clock()
        pair = self.pairs.get((name, client))
        if pair is not None and pair.locked_until > now:
            wait = int(pair.locked_until - now) + 1
            return 423, f"too many wrong PINs from this screen: locked for {_minutes(wait)} or until an admin unlocks", wait
        state = self._client(client, now)
        if state.not_before > now:
            wait = int(state.not_before - now) + 1
            return 429, f"too many wrong PINs from this address: wait {wait} s", wait
        return None

    def failed(self, name: str, client: str) -> tuple[bool, bool]:
        """A wrong PIN: (whether the user is now locked from this client, whether it counts toward the
        user's stored lock-out counter)."""
        now = self.clock()
        state = self._client(client, now)
        state.failures += 1
        state.last = now
        if state.failures >= FREE_FAILURES:
            state.not_before = now + min(MAX_DELAY_S, 2 ** (state.failures - FREE_FAILURES))
        pair = self.pairs.setdefault((name, client), _Pair())
        pair.failures += 1
        counts = pair.counted < USER_CLIENT_FAILURES
        if counts:
            pair.counted += 1
        locked = pair.failures >= USER_CLIENT_FAILURES
        if locked:
            pair.failures = 0
            pair.locked_until = now + LOCK_S * 2 ** pair.locks
            pair.locks += 1
        return locked, counts

    def succeeded(self, name: str, client: str) -> None:
        pair = self.pairs.get((name, client))
        if pair is not None:
            pair.failures = 0

    def locked_from(self, name: str) -> list[dict[str, object]]:
        """The addresses ``name`` is locked out from now, with the seconds left (the admin's user list)."""
        now = self.clock()
        return [{"client": client, "seconds_left": int(pair.locked_until - now) + 1}
                for (user, client), pair in sorted(self.pairs.items()) if user == name and pair.locked_until > now]

    def unlock(self, name: str) -> None:
        """An admin unlocked ``name``: from every client (whose delay ends too: the admin vouched for it)."""
        for key in [key for key in self.pairs if key[0] == name]:
            del self.pairs[key]
            self.clients.pop(key[1], None)

    def _client(self, client: str, now: float) -> _Client:
        state = self.clients.setdefault(client, _Client())
        if state.failures and now - state.last > FORGET_S:
            state.failures, state.not_before = 0, 0.0
        return state


def _minutes(seconds: int) -> str:
    return f"{max(1, round(seconds / 60))} minutes"
