"""Settings: a port the service cannot open, or one shared by two devices, stops it with the key named."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
from pydantic import ValidationError

from devicectl.core.config import ConfigError, Settings, load_settings
from devicectl.serve import simulated_settings


@pytest.fixture
def pty() -> Iterator[str]:
    """The slave side of a real pseudo-terminal: a character device, as a simulator serves."""
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def devices(*ports: str) -> list[dict[str, str]]:
    kinds = ("laser", "cryo")
    return [{"name": f"{kinds[i % 2]}{i}", "type": kinds[i % 2], "port": port} for i, port in enumerate(ports)]


def refusal(tmp_path: Path, *ports: str) -> str:
    with pytest.raises(ConfigError) as refused:
        load_settings(None, data_dir=tmp_path, devices=devices(*ports))
    return str(refused.value)


def test_device_paths_ptys_their_links_and_sockets_are_accepted(tmp_path: Path, pty: str) -> None:
    link = tmp_path / "laser"
    link.symlink_to(pty)  # as the simulated bench links DIR/laser to its pty
    ports = (str(link), "/dev/null", "socket://127.0.0.1:5000", "socket://bench.local:5001")
    settings = load_settings(None, data_dir=tmp_path, devices=devices(*ports))
    assert tuple(d.port for d in settings.devices) == ports
    assert load_settings(None, data_dir=tmp_path, devices=devices(pty)).devices[0].port == pty


@pytest.mark.parametrize(("port", "words"), [
    ("socket://127.0.0.1", "socket://HOST:PORT with a port 1-65535"),
    ("socket://127.0.0.1:0", "port 1-65535"),
    ("socket://127.0.0.1:65536", "port 1-65535"),
    ("socket://127.0.0.1:http", "port 1-65535"),
    ("socket://:5000", "socket://HOST:PORT"),
    ("socket://127.0.0.1:5000/extra", "socket://HOST:PORT"),
    ("tcp://10.0.0.20:5025", "the scheme tcp:// is not supported: use an absolute device path"),
    ("rfc2217://10.0.0.20:4000", "socket://HOST:PORT"),
    ("ttyUSB0", "absolute device path"),
])
def test_a_port_pyserial_cannot_open_is_refused_naming_the_key(tmp_path: Path, port: str, words: str) -> None:
    message = refusal(tmp_path, "/dev/null", port)
    assert "devices.1.port: " in message and words in message


def test_a_missing_device_or_a_plain_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "ttyUSB9"
    assert f"devices.0.port: {missing} does not exist" in refusal(tmp_path, str(missing))
    dangling = tmp_path / "cryo"
    dangling.symlink_to(tmp_path / "gone")  # a simulator's link whose pty has gone
    assert f"devices.0.port: {dangling} does not exist" in refusal(tmp_path, str(dangling))
    plain = tmp_path / "notes.txt"
    plain.write_text("")
    assert f"devices.0.port: {plain} is not a character device" in refusal(tmp_path, str(plain))
    assert "is not a character device" in refusal(tmp_path, str(tmp_path))


def test_one_port_for_two_devices_is_refused_naming_both(tmp_path: Path, pty: str) -> None:
    link = tmp_path / "laser"
    link.symlink_to(pty)
    for first, second in ((pty, pty), (pty, str(link)), ("socket://Bench:5000", "socket://bench:5000")):
        message = refusal(tmp_path, first, second)
        assert "devices.1.port: " in message and "both laser0 (devices.0) and cryo1 (devices.1)" in message
    settings = load_settings(None, data_dir=tmp_path, devices=devices(pty, "socket://bench:5000", "socket://bench:5001"))
    assert len(settings.devices) == 3


def test_the_file_and_the_environment_are_checked_alike(tmp_path: Path, pty: str, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "devicectl.toml"
    config.write_text(f'[[devices]]\nname = "laser"\ntype = "laser"\nport = "{pty}"\n'
                      '[[devices]]\nname = "cryo"\ntype = "cryo"\nport = "/dev/ttyUSB9-not-here"\nwatchdog_ms = 50\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(config, data_dir=tmp_path)
    message = str(refused.value)
    assert message.startswith(f"{config}: ")
    assert "devices.1.port: /dev/ttyUSB9-not-here does not exist" in message
    assert "devices.1.watchdog_ms: " in message
    monkeypatch.setenv("DEVICECTL_DEVICES", f'[{{"name": "laser", "type": "laser", "port": "{pty}"}}]')
    assert load_settings(None, data_dir=tmp_path).devices[0].port == pty
    monkeypatch.setenv("DEVICECTL_DEVICES", '[{"name": "laser", "type": "laser", "port": "tcp://10.0.0.1:1"}]')
    with pytest.raises(ConfigError, match=r"devices\.0\.port: the scheme tcp://"):
        load_settings(None, data_dir=tmp_path)


def test_settings_built_directly_are_checked_too(tmp_path: Path, pty: str) -> None:
    with pytest.raises(ValidationError, match="one device per port"):
        Settings(data_dir=tmp_path, devices=devices(pty, pty))


def test_the_simulated_bench_ports_are_checked_once_its_links_exist(tmp_path: Path, pty: str) -> None:
    """``serve --simulate`` builds its device settings after the bench has linked DATA/sim/laser and cryo."""
    settings = load_settings(None, data_dir=tmp_path)
    addresses = {"meter": "TCPIP::127.0.0.1::5025::SOCKET", "thermometer": "TCPIP::127.0.0.1::5026::SOCKET"}
    with pytest.raises(ValidationError, match="does not exist"):
        simulated_settings(settings, addresses)  # no bench: no links
    (tmp_path / "sim").mkdir()
    master, slave = os.openpty()
    try:
        (tmp_path / "sim" / "laser").symlink_to(pty)
        (tmp_path / "sim" / "cryo").symlink_to(os.ttyname(slave))
        simulated = simulated_settings(settings, addresses)
    finally:
        os.close(master)
        os.close(slave)
    assert [d.port for d in simulated.devices] == [str(tmp_path.resolve() / "sim" / name) for name in ("laser", "cryo")]
