"""Service configuration: a TOML file plus environment (``DEVICECTL_...``), checked by pydantic.

A bad file or value is a ``ConfigError`` whose message names the key (``devices.0.port: ...``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


class DeviceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    type: Literal["laser", "cryo"]
    port: str = Field(min_length=1, description="pyserial URL: /dev/ttyUSB0, a pty, socket://host:port")
    watchdog_ms: int = Field(1000, ge=100, le=5000)


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
    protocols: Path | None = None

    @field_validator("devices")
    @classmethod
    def unique_names(cls, devices: list[DeviceConfig]) -> list[DeviceConfig]:
        names = [d.name for d in devices]
        if len(names) != len(set(names)):
            raise ValueError("device names must be unique")
        return devices


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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(file)'}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"{path or 'configuration'}: {problems}") from None
