"""Service configuration: a TOML file plus environment (``DEVICECTL_...``), checked by pydantic.

A bad file or value is a ``ConfigError`` whose message names the key (``devices.0.port: ...``).

A device port is checked when the settings are built, so a service never starts silently on a
port it cannot open: an absolute path must exist and be a character device (a serial port or a
pty, or a symlink to one such as a simulator's link), ``socket://HOST:PORT`` needs a port 1-65535,
and two devices never share a port (paths compared after resolving symlinks). ``serve --simulate``
builds its device settings only once the simulated bench has created its pty links.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


PORT_FORMS = "an absolute device path (/dev/ttyUSB0, a pty) or socket://HOST:PORT"


def _port_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("device_port", "{message}", {"message": message})


def check_port(port: str) -> str:
    """``port`` if a device can be opened there by pyserial, else a ``PydanticCustomError`` saying why."""
    if port.startswith("/"):
        try:
            mode = os.stat(port).st_mode  # follows symlinks: a simulator's link to its pty is checked as the pty
        except FileNotFoundError:
            raise _port_error(f"{port} does not exist (is the device plugged in?)") from None
        except OSError as exc:
            raise _port_error(f"{port} cannot be examined: {exc.strerror}") from None
        if not stat.S_ISCHR(mode):
            raise _port_error(f"{port} is not a character device (a serial port or a pty)")
        return port
    scheme, separator, _ = port.partition("://")
    if not separator:
        raise _port_error(f"{port!r} is not {PORT_FORMS}")
    if scheme.lower() != "socket":
        raise _port_error(f"the scheme {scheme}:// is not supported: use {PORT_FORMS}")
    parts = urlsplit(port)
    try:
        number = parts.port
    except ValueError:
        number = -1
    if not parts.hostname or number is None or not 1 <= number <= 65535 or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password:
        raise _port_error(f"{port!r} is not socket://HOST:PORT with a port 1-65535")
    return port


def port_identity(port: str) -> str:
    """What makes two ports the same port: the resolved device path, or the lower-cased HOST:PORT."""
    if port.startswith("/"):
        return os.path.realpath(port)
    parts = urlsplit(port)
    return f"socket://{(parts.hostname or '').lower()}:{parts.port}"


class DeviceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    type: Literal["laser", "cryo"]
    port: str = Field(min_length=1, description="pyserial URL: /dev/ttyUSB0, a pty, socket://host:port")
    watchdog_ms: int = Field(1000, ge=100, le=5000)

    @field_validator("port")
    @classmethod
    def openable_port(cls, port: str) -> str:
        return check_port(port)


class ReferenceInstrument(BaseModel):
    """A bench instrument's own calibration, printed on every certificate it was used for
    (traceability); a configured serial must match the instrument's *IDN? answer."""

    model_config = ConfigDict(extra="forbid")
    serial: str | None = None
    calibration_due: date | None = None
    certificate: str | None = Field(None, max_length=64, description="number of the instrument's own certificate")


class ClinicConfig(BaseModel):
    """[clinic]: printed on every aftercare sheet; dates in ``locale`` ("iso": 2026-03-01, or a
    BCP 47 tag such as "de-CH" or "en-GB" for that locale's numeric date)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("", max_length=120)
    contact: str = Field("", max_length=300, description="phone, e-mail or address patients call with a concern")
    locale: str = Field("iso", pattern=r"^(iso|[a-z]{2,3}(-[A-Z]{2})?)$")


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None  # read the password from a file (kept out of the config)
    prefix: str = "devicectl"
    site: str = "clinic"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEVICECTL_", env_nested_delimiter="__", extra="forbid")
    data_dir: Path = Path("data")
    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=0, le=65535)
    devices: list[DeviceConfig] = Field(default_factory=list)
    meter: str | None = None  # VISA resource of the energy meter
    thermometer: str | None = None
    mqtt: MqttConfig | None = None
    calibration_valid_days: int = Field(180, ge=1, le=730)
    token_hours: float = Field(12.0, gt=0, le=168)
    #: the audit log's key (made at the first run, 0600): outside data_dir, by default <data_dir>-audit.key next to it
    audit_key_file: Path | None = None
    #: the signed checkpoints of the audit log (append-only): by default <data_dir>-audit-checkpoints.jsonl next to data_dir
    audit_checkpoint_file: Path | None = None
    audit_checkpoint_every: int = Field(100, ge=1, le=100000)
    protocols: Path | None = None
    #: ``serve --simulate``: the port of the Mosquitto it starts (taken: an error, never another port)
    local_broker_port: int = Field(1883, ge=1, le=65535)
    #: [instruments.meter] / [instruments.thermometer]: serial and own calibration due date
    instruments: dict[Literal["meter", "thermometer"], ReferenceInstrument] = Field(default_factory=dict)
    #: the service loop's thread at this SCHED_FIFO priority (1-99): an interlock's event is read the moment
    #: it arrives, ahead of every thread of the host that is not real-time (H26; bench/reaction_load.py
    #: --realtime). Off in the embedded defaults (``make run``, tests): it needs LimitRTPRIO (or CAP_SYS_NICE);
    #: the shipped unit file and example configuration turn it on (deploy/README.md). Threads the service
    #: starts later run at normal priority.
    realtime_priority: int | None = Field(None, ge=1, le=99)
    #: tests and benchmarks only (fault injection): every commit of the store waits this long, as on a slow disk
    store_commit_delay_ms: float = Field(0.0, ge=0, le=10000)
    #: tests only: a callback of the event loop running longer than this is reported on stderr and
    #: in DATA_DIR/slow-callbacks.log (tests/service_harness.py fails the test on any)
    slow_callback_ms: float | None = Field(None, gt=0)
    tls_cert: Path | None = None  # PEM certificate (devicectl tls-selfsigned makes one)
    tls_key: Path | None = None  # its PEM private key (mode 0600)
    #: serve plain HTTP on a non-loopback address anyway (PINs and tokens then cross the LAN in clear)
    allow_plain_http_on_lan: bool = False
    #: addresses of the treatment-room screens: STOP works from them without a login
    kiosk_addresses: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    #: [clinic]: name, contact and date locale of the aftercare sheets
    clinic: ClinicConfig = Field(default_factory=ClinicConfig)

    def instrument_info(self, role: str) -> dict[str, Any]:
        record = self.instruments.get(role)  # type: ignore[call-overload]
        return {} if record is None else record.model_dump(mode="json", exclude_none=True)

    @field_validator("devices")
    @classmethod
    def unique_names(cls, devices: list[DeviceConfig]) -> list[DeviceConfig]:
        names = [d.name for d in devices]
        if len(names) != len(set(names)):
            raise ValueError("device names must be unique")
        return devices

    @model_validator(mode="after")
    def one_device_per_port(self) -> Settings:
        owners: dict[str, int] = {}
        for index, device in enumerate(self.devices):
            first = owners.setdefault(port_identity(device.port), index)
            if first != index:
                other = self.devices[first]
                raise _port_error(
                    f"devices.{index}.port: {device.port} is the port of both {other.name} (devices.{first}) and "
                    f"{device.name} (devices.{index}): one device per port"
                )
        return self


    @model_validator(mode="after")
    def tls_on_the_lan(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key: give both (or neither)")
        for key in ("tls_cert", "tls_key"):
            path = getattr(self, key)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{key}: {path} is not a file")
        if self.tls_cert is None and not _loopback(self.http_host) and not self.allow_plain_http_on_lan:
            raise ValueError(
                f"http_host: {self.http_host} is reachable from the network, and without TLS PINs and tokens cross "
                "it in clear: set tls_cert and tls_key (devicectl tls-selfsigned makes them), or set "
                "allow_plain_http_on_lan = true to accept that"
            )
        return self


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Settings from ``path`` (TOML) and the environment; overrides win."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = "; ".join(  # a check across keys (a shared port) names its keys in its message
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" if error["loc"] else error["msg"]
            for error in exc.errors()
        )
        raise ConfigError(f"{path or 'configuration'}: {problems}") from None
