"""The shipped systemd units and example configuration are complete and consistent."""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path

from devicectl.core.config import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / name)
    return parser


def test_each_unit_runs_what_the_install_puts_in_place() -> None:
    service = unit("devicectl.service")
    assert service["Service"]["ExecStart"] == \
        "/opt/devicectl/.venv/bin/devicectl serve --config /etc/devicectl/devicectl.toml"
    assert service["Service"]["SupplementaryGroups"] == "dialout" and service["Service"]["KillSignal"] == "SIGTERM"
    assert "devicectl-mosquitto.service" in service["Unit"]["Wants"]
    broker = unit("devicectl-mosquitto.service")
    assert broker["Service"]["ExecStart"] == "/usr/sbin/mosquitto -c /etc/devicectl/mosquitto/mosquitto.conf"
    kiosk = unit("devicectl-kiosk.service")
    assert "/usr/bin/chromium --kiosk" in kiosk["Service"]["ExecStart"] and "http://127.0.0.1:8000/" in kiosk["Service"]["ExecStart"]
    for name in ("devicectl.service", "devicectl-mosquitto.service", "devicectl-kiosk.service"):
        assert unit(name)["Install"]["WantedBy"]
    install = (DEPLOY / "install.sh").read_text()
    assert "--require-hashes" in install and "requirements.lock" in install


def test_the_example_configuration_names_ports_by_id_and_instruments() -> None:
    data = tomllib.loads((DEPLOY / "devicectl.example.toml").read_text())
    assert all(d["port"].startswith("/dev/serial/by-id/") for d in data["devices"])
    settings = Settings(**{**data, "devices": []})  # the ports exist only on the clinic machine
    assert settings.instrument_info("meter")["calibration_due"] == "2027-03-31"
    assert settings.http_port == 8000 == int(unit("devicectl-kiosk.service")["Service"]["ExecStart"].split(":")[-1].strip("/"))


def test_the_shipped_files_run_the_devices_loop_at_the_real_time_priority_they_allow() -> None:
    """The example configuration asks for a real-time priority the unit file allows (H26): asked for
    but not allowed, the service would run at normal priority on every clinic machine."""
    data = tomllib.loads((DEPLOY / "devicectl.example.toml").read_text())
    allowed = int(unit("devicectl.service")["Service"]["LimitRTPRIO"])
    assert Settings(**{**data, "devices": []}).realtime_priority == data["realtime_priority"] == 10 <= allowed
