"""Render the shipped Mosquitto configuration (deploy/mosquitto/) and run a broker with it."""

from __future__ import annotations

import getpass
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from devicectl.core.procs import die_with_parent

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
USERS = ("service", "monitor", "operator")


def mosquitto_binary() -> str | None:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(directory: Path, port: int, bind: str = "127.0.0.1") -> dict[str, str]:
    """mosquitto.conf, acl and a password file in ``directory``; returns the new passwords
    (an existing password file is kept, and then nothing is returned)."""
    directory.mkdir(parents=True, exist_ok=True)
    passwords_path = directory / "passwd"
    acl_path = directory / "acl"
    shutil.copyfile(TEMPLATE_DIR / "acl", acl_path)
    conf = (TEMPLATE_DIR / "mosquitto.conf").read_text().format(
        port=port, bind=bind, passwords=passwords_path.resolve(), acl=acl_path.resolve(), user=getpass.getuser()
    )
    (directory / "mosquitto.conf").write_text(conf)
    if passwords_path.exists():
        return {}
    passwords = {user: secrets.token_urlsafe(12) for user in USERS}
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    for index, (user, password) in enumerate(passwords.items()):
        flags = ["-c"] if index == 0 else []
        subprocess.run([tool, *flags, "-b", str(passwords_path), user, password], check=True, capture_output=True)
    passwords_path.chmod(0o600)
    (directory / "service.password").write_text(passwords["service"])
    (directory / "service.password").chmod(0o600)
    return passwords


def start_broker(directory: Path, port: int) -> subprocess.Popen[bytes]:
    binary = mosquitto_binary()
    if binary is None:
        raise FileNotFoundError("mosquitto is not installed")
    proc = subprocess.Popen([binary, "-c", str(directory / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE,
                            preexec_fn=die_with_parent)  # noqa: PLW1509 (one prctl call through ctypes: dies with the service)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not open its port")
