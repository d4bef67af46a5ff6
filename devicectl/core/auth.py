"""Users, roles, PIN login (scrypt, hashed in a worker thread: never on the event loop), lock-out after 5 failures, session tokens.

Only practitioners treat, only technicians calibrate or use service mode, admins manage users;
every login, refusal and change is audited. The first admin is created on first run with a
one-time PIN that must be changed at first login.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass

from devicectl.core.audit import AuditLog
from devicectl.core.guard import USER_FAILURES, Guard, weak_pin
from devicectl.core.store import Store

ROLES = ("practitioner", "technician", "admin")
MAX_FAILURES = 5
LOCKOUT_S = 15 * 60
PIN_DIGITS = (4, 12)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class AuthError(Exception):
    """Login or permission refused; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 401, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  #: seconds, answered as Retry-After (429, 423)


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    must_change: bool


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    key = hashlib.scrypt(pin.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${salt.hex()}${key.hex()}"


#: a one-time PIN that was used to log in once: it no longer logs in (it still proves the PIN change)
SPENT = "spent:"


def check_pin(pin: str, stored: str) -> bool:
    if stored.startswith(SPENT):
        return False
    _, salt_hex, key_hex = stored.split("$")
    candidate = hash_pin(pin, bytes.fromhex(salt_hex)).split("$")[2]
    return hmac.compare_digest(candidate, key_hex)


def valid_pin(pin: str) -> bool:
    return pin.isdigit() and PIN_DIGITS[0] <= len(pin) <= PIN_DIGITS[1]


_USER_OF_TOKEN = ("SELECT users.*, tokens.expires FROM tokens JOIN users ON users.id = tokens.user_id"
                  " WHERE tokens.hash = ?")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, store: Store, audit: AuditLog, token_hours: float = 12.0) -> None:
        self.store = store
        self.audit = audit
        self.token_s = token_hours * 3600
        self.guard = Guard()

    async def ensure_first_admin(self) -> str | None:
        """Create the first admin on first run; returns its one-time PIN (None if users exist)."""
        if await self.store.read(lambda conn: conn.execute("SELECT id FROM users LIMIT 1").fetchone()):
            return None
        pin = f"{secrets.randbelow(10**6):06d}"
        pin_hash = await self.store.run(hash_pin, pin)  # scrypt: tens of ms of CPU, never on the loop

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO users (name, role, pin_hash, must_change, created) VALUES (?, 'admin', ?, 1, ?)",
                         ("admin", pin_hash, time.time()))
            self.audit.append_in(conn, "system", "user.created", name="admin", role="admin", first_run=True)

        await self.store.write(work)
        return pin

    async def create_user(self, actor: User, name: str, role: str, pin: str) -> int:
        if actor.role != "admin":
            await self._refuse_async(actor, "user.create", "only an admin manages users", 403)
        if role not in ROLES:
            raise AuthError(f"role must be one of {', '.join(ROLES)}", 422)
        reason = weak_pin(pin, role)
        if reason:
            raise AuthError(reason, 422)
        if await self.store.read(lambda conn: conn.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()):
            raise AuthError(f"user {name!r} exists", 409)
        pin_hash = await self.store.run(hash_pin, pin)

        def work(conn: sqlite3.Connection) -> int:
            cursor = conn.execute("INSERT INTO users (name, role, pin_hash, must_change, created) VALUES (?, ?, ?, 1, ?)",
                                  (name, role, pin_hash, time.time()))
            self.audit.append_in(conn, actor.name, "user.created", name=name, role=role)
            return int(cursor.lastrowid or 0)

        return int(await self.store.write(work))

    async def unlock(self, actor: User, name: str) -> None:
        if actor.role != "admin":
            await self._refuse_async(actor, "user.unlock", "only an admin unlocks users", 403)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE users SET failed = 0, locked_until = 0 WHERE name = ?", (name,))
            self.audit.append_in(conn, actor.name, "user.unlocked", name=name)

        await self.store.write(work)
        self.guard.unlock(name)

    async def list_users(self, actor: User) -> list[dict[str, object]]:
        """Every user with role, whether active, locked (everywhere, or from some addresses: ``locked_from``)
        or due to change a one-time PIN (admins only)."""
        if actor.role != "admin":
            await self._refuse_async(actor, "user.list", "only an admin manages users", 403)
        rows = await self.store.read(lambda conn: conn.execute("SELECT * FROM users ORDER BY name").fetchall())
        now = time.time()
        return [{"name": r["name"], "role": r["role"], "active": bool(r["active"]), "locked": r["locked_until"] > now,
                 "locked_from": self.guard.locked_from(r["name"]),
                 "failed": r["failed"], "must_change_pin": bool(r["must_change"]), "created": r["created"]} for r in rows]

    async def deactivate(self, actor: User, name: str) -> None:
        """The user can no longer log in and its logins end; records keep its name (admins only, never oneself)."""
        if actor.role != "admin":
            await self._refuse_async(actor, "user.deactivate", "only an admin manages users", 403)
        if name == actor.name:
            raise AuthError("an admin cannot deactivate their own user", 409)

        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT id FROM users WHERE name = ? AND active = 1", (name,)).fetchone()
            if row is None:
                return False
            conn.execute("UPDATE users SET active = 0 WHERE id = ?", (row["id"],))
            conn.execute("DELETE FROM tokens WHERE user_id = ?", (row["id"],))
            self.audit.append_in(conn, actor.name, "user.deactivated", name=name)
            return True

        if not await self.store.write(work):
            raise AuthError(f"no active user {name!r}", 404)

    async def reset_pin(self, actor: User, name: str, pin: str) -> None:
        """A one-time PIN set by an admin (the user chooses their own at the next login); unlocks too."""
        if actor.role != "admin":
            await self._refuse_async(actor, "user.reset_pin", "only an admin manages users", 403)
        role = await self.store.read(lambda conn: conn.execute("SELECT role FROM users WHERE name = ? AND active = 1",
                                                                (name,)).fetchone())
        if role is None:
            raise AuthError(f"no active user {name!r}", 404)
        reason = weak_pin(pin, role["role"])  # the rules of the user's role, as for a PIN they choose
        if reason:
            raise AuthError(reason, 422)
        pin_hash = await self.store.run(hash_pin, pin)

        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT id FROM users WHERE name = ? AND active = 1", (name,)).fetchone()
            if row is None:
                return False
            conn.execute("UPDATE users SET pin_hash = ?, must_change = 1, failed = 0, locked_until = 0 WHERE id = ?",
                         (pin_hash, row["id"]))
            conn.execute("DELETE FROM tokens WHERE user_id = ?", (row["id"],))
            self.audit.append_in(conn, actor.name, "user.pin_reset", name=name)
            return True

        if not await self.store.write(work):
            raise AuthError(f"no active user {name!r}", 404)
        self.guard.unlock(name)

    async def login(self, name: str, pin: str, client: str = "local") -> tuple[str, User]:
        """Log in from ``client`` (its address): wrong PINs are slowed per client and locked per user and
        client (devicectl/core/guard.py); a one-time PIN logs in once."""
        await self._guarded(name, client, "login.refused")
        row = await self.store.read(
            lambda conn: conn.execute("SELECT * FROM users WHERE name = ? AND active = 1", (name,)).fetchone())
        now = time.time()
        if row is None:
            self.guard.failed(name, client)  # guessing names is guessing too
            await self.audit.append(name or "?", "login.refused", reason="unknown user", client=client)
            raise AuthError("unknown user or wrong PIN")
        if row["locked_until"] > now:
            await self.audit.append(name, "login.refused", reason="locked", client=client)
            raise AuthError("too many wrong PINs: locked for 15 minutes or until an admin unlocks", 423)
        if not await self.store.run(check_pin, pin, row["pin_hash"]):
            await self._wrong_pin(row, client, "login.refused")
            raise AuthError("unknown user or wrong PIN")
        self.guard.succeeded(name, client)
        token = secrets.token_urlsafe(32)
        spent = SPENT + row["pin_hash"] if row["must_change"] else row["pin_hash"]  # a one-time PIN works once

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE users SET failed = 0, locked_until = 0, pin_hash = ? WHERE id = ?", (spent, row["id"]))
            conn.execute("INSERT INTO tokens (hash, user_id, expires) VALUES (?, ?, ?)", (_token_hash(token), row["id"], now + self.token_s))
            self.audit.append_in(conn, name, "login", role=row["role"])

        await self.store.write(work)
        return token, User(row["id"], row["name"], row["role"], bool(row["must_change"]))

    async def logout(self, token: str, user: User) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM tokens WHERE hash = ?", (_token_hash(token),))
            self.audit.append_in(conn, user.name, "logout")

        await self.store.write(work)

    def user_for(self, token: str | None) -> User:
        """The token's user (a synchronous read: for worker threads, such as FastAPI's sync dependencies)."""
        if not token:
            raise AuthError("log in first")
        return self._user(self.store.one(_USER_OF_TOKEN, (_token_hash(token),)))

    async def authenticate(self, token: str | None) -> User:
        """``user_for``, read off the event loop."""
        if not token:
            raise AuthError("log in first")
        digest = _token_hash(token)
        return self._user(await self.store.read(lambda conn: conn.execute(_USER_OF_TOKEN, (digest,)).fetchone()))

    async def token_expiry(self, token: str) -> float | None:
        """When ``token`` expires (epoch seconds), None for an unknown token."""
        digest = _token_hash(token)
        row = await self.store.read(lambda conn: conn.execute("SELECT expires FROM tokens WHERE hash = ?", (digest,)).fetchone())
        return None if row is None else float(row["expires"])

    @staticmethod
    def _user(row: sqlite3.Row | None) -> User:
        if row is None or not row["active"]:
            raise AuthError("not logged in (unknown token)")
        if row["expires"] < time.time():
            raise AuthError("the login expired: log in again")
        return User(row["id"], row["name"], row["role"], bool(row["must_change"]))

    async def change_pin(self, user: User, old: str, new: str, client: str = "local") -> None:
        """Wrong current PINs count like wrong PINs at login (a stolen token cannot guess the PIN)."""
        await self._guarded(user.name, client, "pin.refused")
        row = await self.store.read(lambda conn: conn.execute("SELECT * FROM users WHERE id = ?", (user.id,)).fetchone())
        if row is None or not await self.store.run(check_pin, old, row["pin_hash"].removeprefix(SPENT)):
            if row is not None:
                await self._wrong_pin(row, client, "pin.refused")
            raise AuthError("the current PIN is wrong", 403)
        self.guard.succeeded(user.name, client)
        reason = weak_pin(new, user.role, previous=old)
        if reason:
            raise AuthError(reason, 422)
        pin_hash = await self.store.run(hash_pin, new)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE users SET pin_hash = ?, must_change = 0 WHERE id = ?", (pin_hash, user.id))
            self.audit.append_in(conn, user.name, "pin.changed")

        await self.store.write(work)

    async def _guarded(self, name: str, client: str, action: str) -> None:
        blocked = self.guard.check(name, client)
        if blocked is not None:
            status, message, wait = blocked
            await self.audit.append(name or "?", action, reason="locked" if status == 423 else "throttled", client=client)
            raise AuthError(message, status, wait)

    async def _wrong_pin(self, row: sqlite3.Row, client: str, action: str) -> None:
        """A wrong PIN for ``row``'s user from ``client``: counted (audited); 423 once locked."""
        locked_here, counts = self.guard.failed(row["name"], client)
        now = time.time()
        user_id = row["id"]

        def refused(conn: sqlite3.Connection) -> tuple[int, bool]:
            current = conn.execute("SELECT failed, locked_until FROM users WHERE id = ?", (user_id,)).fetchone()
            failed = current["failed"] + (1 if counts else 0)
            locked_everywhere = failed >= USER_FAILURES
            if counts:
                conn.execute("UPDATE users SET failed = ?, locked_until = ? WHERE id = ?",
                             (failed, now + LOCKOUT_S if locked_everywhere else current["locked_until"], user_id))
            self.audit.append_in(conn, row["name"], action, reason="wrong PIN", client=client, failures=failed,
                                 locked=locked_here or locked_everywhere)
            return failed, locked_everywhere

        _, locked_everywhere = await self.store.write(refused)
        if locked_everywhere:
            raise AuthError("too many wrong PINs: locked for 15 minutes or until an admin unlocks", 423)
        if locked_here:
            raise AuthError("too many wrong PINs from this screen: locked for 15 minutes or until an admin unlocks", 423)

    def require(self, user: User, *roles: str, action: str) -> None:
        """Refuse (403, audited) unless ``user`` has one of ``roles``; a one-time PIN must be changed first."""
        if user.must_change:
            self._refuse(user, action, "change your one-time PIN first", 403)
        if user.role not in roles:
            self._refuse(user, action, f"only a {' or '.join(roles)} may do this", 403)

    def _refuse(self, user: User, action: str, message: str, status: int) -> None:
        """Refuse, audited: on the event loop the entry is queued (the API awaits the store's flush
        before it answers an error), elsewhere committed first."""
        self.audit.append(user.name, "refused", attempted=action, reason=message, role=user.role)
        raise AuthError(message, status)

    async def _refuse_async(self, user: User, action: str, message: str, status: int) -> None:
        await self.audit.append(user.name, "refused", attempted=action, reason=message, role=user.role)
        raise AuthError(message, status)
