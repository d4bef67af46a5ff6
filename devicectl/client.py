"""A small client library for technicians' own scripts.

Against the service (``ServiceClient``: logs in with a PIN, reads devices and calibrations, can
STOP) or directly against the devices when the service is not using them (``laser``, ``cryo``,
``energy_meter``, ``thermometer``: the same drivers the service uses).
"""

from __future__ import annotations

from typing import Any, Self

import httpx

from drivers import CryoDriver, LaserDriver
from drivers.scpi import EnergyMeter, ReferenceThermometer


class ServiceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class ServiceClient:
    def __init__(self, url: str = "http://127.0.0.1:8000", timeout: float = 10.0) -> None:
        self.http = httpx.Client(base_url=url, timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.http.request(method, path, **kwargs)
        data = answer.json() if answer.content else {}
        if answer.status_code >= 400:
            raise ServiceError(answer.status_code, data.get("error") or str(data.get("detail")))
        return data

    def login(self, user: str, pin: str) -> dict[str, Any]:
        data = self._call("POST", "/api/login", json={"user": user, "pin": pin})
        self.http.headers["Authorization"] = f"Bearer {data['token']}"
        return data

    def devices(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/devices")

    def calibrations(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/calibrations")

    def session(self, session_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/sessions/{session_id}")

    def stop(self, device: str | None = None) -> list[str]:
        return self._call("POST", "/api/stop", json={"device": device, "origin": "script"})["stopped"]


def laser(port: str) -> LaserDriver:
    """``async with laser("/dev/ttyUSB0") as unit: ...``"""
    return LaserDriver(port)


def cryo(port: str) -> CryoDriver:
    return CryoDriver(port)


def energy_meter(resource: str) -> EnergyMeter:
    """``with energy_meter("TCPIP::10.0.0.20::5025::SOCKET") as meter: ...``"""
    return EnergyMeter(resource)


def thermometer(resource: str) -> ReferenceThermometer:
    return ReferenceThermometer(resource)
