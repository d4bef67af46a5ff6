"""Users, roles, PIN login (scrypt), lock-out after 5 failures, session tokens.

Only practitioners treat, only technicians calibrate or use service mode, admins manage users;
every login, refusal and change is audited. The first admin is created on first run with a
one-time PIN that must be changed at first login.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from .audit import AuditLog
from .store import Store

ROLES = ("practitioner", "technician", "admin")
MAX_FAILURES = 5
LOCKOUT_S = 15 * 60
PIN_DIGITS = (4, 12)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class AuthError(Exception):
    """Login or permission refused; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


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


def check_pin(pin: str, stored: str) -> bool:
    _, salt_hex, key_hex = stored.split("$")
    candidate = hash_pin(pin, bytes.fromhex(salt_hex)).split("$")[2]
    return hmac.compare_digest(candidate, key_hex)


def valid_pin(pin: str) -> bool:
    return pin.isdigit() and PIN_DIGITS[0] <= len(pin) <= PIN_DIGITS[1]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, store: Store, audit: AuditLog, token_hours: float = 12.0) -> None:
        self.store = store
        self.audit = audit
        self.token_s = token_hours * 3600

    def ensure_first_admin(self) -> str | None:
        """Create the first admin on first run; returns its one-time PIN (None if users exist)."""
        if self.store.one("SELECT id FROM users LIMIT 1"):
            return None
        pin = f"{secrets.randbelow(10**6):06d}"
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO users (name, role, pin_hash, must_change, created) VALUES (?, 'admin', ?, 1, ?)",
                ("admin", hash_pin(pin), time.time()),
            )
            self.audit.append("system", "user.created", tx, name="admin", role="admin", first_run=True)
        return pin

    def create_user(self, actor: User, name: str, role: str, pin: str) -> int:
        if actor.role != "admin":
            self._refuse(actor, "user.create", "only an admin manages users", 403)
        if role not in ROLES:
            raise AuthError(f"role must be one of {', '.join(ROLES)}", 422)
        if not valid_pin(pin):
            raise AuthError(f"a PIN is {PIN_DIGITS[0]}-{PIN_DIGITS[1]} digits", 422)
        if self.store.one("SELECT id FROM users WHERE name = ?", (name,)):
            raise AuthError(f"user {name!r} exists", 409)
        with self.store.transaction() as tx:
            cursor = tx.execute(
                "INSERT INTO users (name, role, pin_hash, must_change, created) VALUES (?, ?, ?, 0, ?)",
                (name, role, hash_pin(pin), time.time()),
            )
            self.audit.append(actor.name, "user.created", tx, name=name, role=role)
        return int(cursor.lastrowid or 0)

    def unlock(self, actor: User, name: str) -> None:
        if actor.role != "admin":
            self._refuse(actor, "user.unlock", "only an admin unlocks users", 403)
        with self.store.transaction() as tx:
            tx.execute("UPDATE users SET failed = 0, locked_until = 0 WHERE name = ?", (name,))
            self.audit.append(actor.name, "user.unlocked", tx, name=name)

    def login(self, name: str, pin: str) -> tuple[str, User]:
        row = self.store.one("SELECT * FROM users WHERE name = ? AND active = 1", (name,))
        now = time.time()
        if row is None:
            self.audit.append(name or "?", "login.refused", reason="unknown user")
            raise AuthError("unknown user or wrong PIN")
        if row["locked_until"] > now:
            self.audit.append(name, "login.refused", reason="locked")
            raise AuthError("too many wrong PINs: locked for 15 minutes or until an admin unlocks", 423)
        if not check_pin(pin, row["pin_hash"]):
            failed = row["failed"] + 1
            locked_until = now + LOCKOUT_S if failed >= MAX_FAILURES else 0
            with self.store.transaction() as tx:
                tx.execute("UPDATE users SET failed = ?, locked_until = ? WHERE id = ?", (failed, locked_until, row["id"]))
                self.audit.append(name, "login.refused", tx, reason="wrong PIN", failures=failed, locked=bool(locked_until))
            if locked_until:
                raise AuthError("too many wrong PINs: locked for 15 minutes or until an admin unlocks", 423)
            raise AuthError("unknown user or wrong PIN")
        token = secrets.token_urlsafe(32)
        with self.store.transaction() as tx:
            tx.execute("UPDATE users SET failed = 0, locked_until = 0 WHERE id = ?", (row["id"],))
            tx.execute("INSERT INTO tokens (hash, user_id, expires) VALUES (?, ?, ?)", (_token_hash(token), row["id"], now + self.token_s))
            self.audit.append(name, "login", tx, role=row["role"])
        return token, User(row["id"], row["name"], row["role"], bool(row["must_change"]))

    def logout(self, token: str, user: User) -> None:
        with self.store.transaction() as tx:
            tx.execute("DELETE FROM tokens WHERE hash = ?", (_token_hash(token),))
            self.audit.append(user.name, "logout", tx)

    def user_for(self, token: str | None) -> User:
        if not token:
            raise AuthError("log in first")
        row = self.store.one(
            "SELECT users.*, tokens.expires FROM tokens JOIN users ON users.id = tokens.user_id WHERE tokens.hash = ?",
            (_token_hash(token),),
        )
        if row is None or not row["active"]:
            raise AuthError("not logged in (unknown token)")
        if row["expires"] < time.time():
            raise AuthError("the login expired: log in again")
        return User(row["id"], row["name"], row["role"], bool(row["must_change"]))

    def change_pin(self, user: User, old: str, new: str) -> None:
        row = self.store.one("SELECT pin_hash FROM users WHERE id = ?", (user.id,))
        if row is None or not check_pin(old, row["pin_hash"]):
            self.audit.append(user.name, "pin.refused", reason="wrong current PIN")
            raise AuthError("the current PIN is wrong", 403)
        if not valid_pin(new) or new == old:
            raise AuthError(f"the new PIN must be {PIN_DIGITS[0]}-{PIN_DIGITS[1]} digits and differ from the old", 422)
        with self.store.transaction() as tx:
            tx.execute("UPDATE users SET pin_hash = ?, must_change = 0 WHERE id = ?", (hash_pin(new), user.id))
            self.audit.append(user.name, "pin.changed", tx)

    def require(self, user: User, *roles: str, action: str) -> None:
        """Refuse (403, audited) unless ``user`` has one of ``roles``; a one-time PIN must be changed first."""
        if user.must_change:
            self._refuse(user, action, "change your one-time PIN first", 403)
        if user.role not in roles:
            self._refuse(user, action, f"only a {' or '.join(roles)} may do this", 403)

    def _refuse(self, user: User, action: str, message: str, status: int) -> None:
        self.audit.append(user.name, "refused", attempted=action, reason=message, role=user.role)
        raise AuthError(message, status)
