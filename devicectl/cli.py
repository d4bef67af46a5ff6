"""The ``devicectl`` command line."""

from __future__ import annotations

import asyncio
import signal
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

import typer

from devicectl.core.config import ConfigError, load_settings
from simulators.host import SimulatorHost
from simulators.units import build_unit

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Treatment device control.")
sim_app = typer.Typer(no_args_is_help=True, help="Run device simulators in the foreground.")
app.add_typer(sim_app, name="sim")


class Cryogen(str, Enum):
    N2O = "N2O"
    LN2 = "LN2"


def _port_option(help_text: str) -> int | None:
    return typer.Option(None, min=0, max=65535, help=help_text)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@sim_app.command("laser")
def sim_laser(
    tcp: int | None = _port_option("Also serve the line on TCP (0 picks a free port)."),
    backdoor: int | None = _port_option("Serve the JSON-lines backdoor on this port (0: free)."),
    seed: int = typer.Option(0, help="Seed of the simulated noise."),
    link: str | None = typer.Option(None, help="Symlink this path to the pty (stable across replugs)."),
    serial: str = typer.Option("QS1064-0001", help="Serial number reported by IDN?."),
) -> None:
    """The Q-switched laser QS-1064 on a pty (and TCP)."""
    _serve("laser", tcp, backdoor, seed, link, serial=serial)


@sim_app.command("cryo")
def sim_cryo(
    tcp: int | None = _port_option("Also serve the line on TCP (0 picks a free port)."),
    backdoor: int | None = _port_option("Serve the JSON-lines backdoor on this port (0: free)."),
    seed: int = typer.Option(0, help="Seed of the simulated noise."),
    link: str | None = typer.Option(None, help="Symlink this path to the pty (stable across replugs)."),
    cryogen: Cryogen = typer.Option(Cryogen.N2O, help="Cryogen of the unit."),
    serial: str = typer.Option("CP2-0001", help="Serial number reported by IDN?."),
) -> None:
    """The cryo-probe unit CP-2 on a pty (and TCP)."""
    _serve("cryo", tcp, backdoor, seed, link, serial=serial, cryogen=cryogen.value)


def _serve(kind: str, tcp: int | None, backdoor: int | None, seed: int, link: str | None, **options: str) -> None:
    async def main() -> None:
        unit, door = build_unit(kind, seed=seed, **options)  # type: ignore[arg-type]
        host = SimulatorHost(unit, door, link=link, tcp_port=tcp, backdoor_port=backdoor)
        addresses = await host.start()
        for line in addresses.lines(kind):
            typer.echo(line)
        typer.echo("press Ctrl-C to stop", err=True)
        await _until_signalled()
        await host.stop()

    asyncio.run(main())


@sim_app.command("bench")
def sim_bench(
    seed: int = typer.Option(0, help="Seed of the simulated noise."),
    tcp: bool = typer.Option(False, help="Also serve the laser and cryo lines on TCP."),
    meter_port: int = typer.Option(0, min=0, max=65535, help="TCP port of the energy meter (0: free)."),
    thermometer_port: int = typer.Option(0, min=0, max=65535, help="TCP port of the thermometer (0: free)."),
    link_dir: str | None = typer.Option(None, help="Symlink DIR/laser and DIR/cryo to the ptys."),
    json_line: bool = typer.Option(False, "--json", help="Print the addresses as one JSON line."),
) -> None:
    """Laser, cryo, energy meter and thermometer on one simulated bench."""
    import json

    from simulators.bench import build_bench

    async def main() -> None:
        if link_dir:
            Path(link_dir).mkdir(parents=True, exist_ok=True)
        bench = build_bench(seed=seed, tcp=tcp, instrument_ports=(meter_port, thermometer_port), link_dir=link_dir)
        addresses = await bench.start()
        if json_line:
            typer.echo(json.dumps(addresses))
        else:
            for name, address in addresses.items():
                typer.echo(f"{name}: {address}")
        typer.echo("bench running; press Ctrl-C to stop", err=True)
        await _until_signalled()
        await bench.stop()

    asyncio.run(main())


@app.command("serve")
def serve(
    config: Path | None = typer.Option(None, exists=True, dir_okay=False, help="TOML configuration file."),
    simulate: bool = typer.Option(False, help="Start the simulated bench and run against it."),
    host: str | None = typer.Option(None, help="HTTP bind address (default 127.0.0.1)."),
    port: int | None = typer.Option(None, min=0, max=65535, help="HTTP port (default 8000)."),
    data_dir: Path | None = typer.Option(None, help="Folder of the database (default ./data)."),
) -> None:
    """Run the service: devices under the safety kernel, records, API and touchscreen."""
    from devicectl.serve import run_service

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["http_host"] = host
    if port is not None:
        overrides["http_port"] = port
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(run_service(settings, simulate))


@app.command("tls-selfsigned")
def tls_selfsigned(
    name: list[str] = typer.Option(..., "--name", help="Host name or IP address the touchscreens use (repeat)."),
    cert: Path = typer.Option(Path("data/tls/cert.pem"), help="Where to write the certificate."),
    key: Path = typer.Option(Path("data/tls/key.pem"), help="Where to write the private key (mode 0600)."),
    days: int = typer.Option(825, min=1, max=3650, help="Validity in days."),
) -> None:
    """Make the clinic's own TLS certificate; then set tls_cert and tls_key in the configuration."""
    from devicectl.web.tls import make_self_signed

    try:
        make_self_signed(cert, key, name, days)
    except (ValueError, OSError) as exc:
        typer.echo(f"tls-selfsigned: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"certificate {cert}\nprivate key {key} (mode 0600)\nadd to the configuration:\n"
               f'tls_cert = "{cert.resolve()}"\ntls_key = "{key.resolve()}"')


@app.command("mqtt-config")
def mqtt_config(
    directory: Path = typer.Option(Path("data/mqtt"), "--dir", help="Where to write the broker's files."),
    port: int = typer.Option(1883, min=1, max=65535, help="Listener port."),
    bind: str = typer.Option("127.0.0.1", help="Listener address."),
) -> None:
    """Write the shipped Mosquitto config, ACL and a password file with fresh passwords."""
    from devicectl.mqtt.broker import write_config

    passwords = write_config(directory, port, bind)
    typer.echo(f"wrote {directory}/mosquitto.conf, acl, passwd: run `mosquitto -c {directory}/mosquitto.conf`")
    for user, password in passwords.items():
        typer.echo(f"  {user}: {password}")
    if not passwords:
        typer.echo("  (the existing password file was kept)")


calibrate_app = typer.Typer(no_args_is_help=True, help="Calibration procedures for technicians.")
app.add_typer(calibrate_app, name="calibrate")


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what} must be whole numbers separated by commas") from None
    if not values:
        raise typer.BadParameter(f"give at least one {what}")
    return values


def _service_url(service: str | None, config: Path | None) -> str | None:
    if service:
        return service
    if config is not None:
        from devicectl.calibration.remote import service_url_from_config

        return service_url_from_config(config)
    return None


REFERENCE_SERIAL = typer.Option(None, help="Standalone bench: the reference instrument's serial (checked against *IDN?).")
REFERENCE_DUE = typer.Option(None, formats=["%Y-%m-%d"], help="Standalone bench: the reference instrument's own "
                             "calibration due date (an overdue instrument is refused; printed on the certificate).")
REFERENCE_CERTIFICATE = typer.Option(None, help="Standalone bench: the number of the reference instrument's certificate.")


def _reference(serial: str | None, due: datetime | None, certificate: str | None) -> dict[str, Any]:
    return {"serial": serial, "calibration_due": due.date().isoformat() if due else None, "certificate": certificate}


SERVICE_OPTION = typer.Option(None, "--service", help="URL of the running service: calibrate through it (service mode).")
CONFIG_OPTION = typer.Option(None, "--config", exists=True, dir_okay=False,
                             help="The service's configuration: calibrate through the service it describes.")
USER_OPTION = typer.Option(..., help="Technician's user name.")
PIN_OPTION = typer.Option(..., prompt=True, hide_input=True, envvar="DEVICECTL_PIN", help="Technician's PIN.")
DATA_DIR_OPTION = typer.Option(Path("data"), help="The service's data folder (records and certificates).")
VALID_DAYS_OPTION = typer.Option(180, min=1, max=730, help="Days the calibration stays valid.")


@calibrate_app.command("laser")
def calibrate_laser_cmd(
    port: str | None = typer.Option(None, help="The laser's serial port (standalone bench, no service)."),
    meter: str | None = typer.Option(None, help="VISA resource of the energy meter EM-1 (standalone bench)."),
    service: str | None = SERVICE_OPTION,
    config: Path | None = CONFIG_OPTION,
    device: str = typer.Option("laser", help="The device's name in the service."),
    user: str = USER_OPTION,
    pin: str = PIN_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    setpoints: str = typer.Option("200,500,800", help="Energy setpoints in mJ."),
    pulses: int = typer.Option(10, min=2, max=100, help="Pulses per setpoint."),
    rate: float = typer.Option(5.0, min=0.5, max=10.0, help="Pulse rate in Hz."),
    valid_days: int = VALID_DAYS_OPTION,
    reference_serial: str | None = REFERENCE_SERIAL,
    reference_due: datetime | None = REFERENCE_DUE,
    reference_certificate: str | None = REFERENCE_CERTIFICATE,
) -> None:
    """Laser in SERVICE mode, EM-1 in the beam: emitted-energy gain and monitor error."""
    _calibrate("laser", port, ("meter", meter), _service_url(service, config), device, user, pin, data_dir, valid_days,
               _reference(reference_serial, reference_due, reference_certificate),
               {"setpoints": _int_list(setpoints, "setpoint"), "pulses": pulses, "rate": rate})


@calibrate_app.command("cryo")
def calibrate_cryo_cmd(
    port: str | None = typer.Option(None, help="The cryo unit's serial port (standalone bench, no service)."),
    thermometer: str | None = typer.Option(None, help="VISA resource of the reference thermometer RT-1 "
                                              "(standalone bench)."),
    service: str | None = SERVICE_OPTION,
    config: Path | None = CONFIG_OPTION,
    device: str = typer.Option("cryo", help="The device's name in the service."),
    user: str = USER_OPTION,
    pin: str = PIN_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    targets: str = typer.Option("-30,-50", help="Target temperatures in degC."),
    freeze: float = typer.Option(6.0, min=2.0, max=30.0, help="Freeze time per target in s."),
    valid_days: int = VALID_DAYS_OPTION,
    reference_serial: str | None = REFERENCE_SERIAL,
    reference_due: datetime | None = REFERENCE_DUE,
    reference_certificate: str | None = REFERENCE_CERTIFICATE,
) -> None:
    """RT-1 clamped on the tip: the tip sensor's offset."""
    _calibrate("cryo", port, ("thermometer", thermometer), _service_url(service, config), device, user, pin, data_dir,
               valid_days, _reference(reference_serial, reference_due, reference_certificate),
               {"targets": _int_list(targets, "target"), "freeze": freeze})


def _calibrate(kind: str, port: str | None, instrument: tuple[str, str | None], url: str | None, device: str,
               user: str, pin: str, data_dir: Path, valid_days: int, reference: dict[str, Any],
               procedure: dict[str, Any]) -> NoReturn:
    """Through the running service at ``url`` (service mode), else on a bench without a service."""
    if url is not None:
        from devicectl.calibration.remote import run_remote_calibration

        raise typer.Exit(run_remote_calibration(url, device, user, pin, procedure))
    option, resource = instrument
    if not port or not resource:
        raise typer.BadParameter("give --service URL (or --config) to calibrate through the running service, "
                                 f"or --port and --{option} for a bench without a service")
    from devicectl.calibration.standalone import run_calibration

    raise typer.Exit(run_calibration(kind, port, resource, user, pin, data_dir, valid_days, reference, **procedure))


audit_app = typer.Typer(no_args_is_help=True, help="The audit log.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(data_dir: Path = typer.Option(Path("data"), help="Folder of the database."),
                 key_file: Path | None = typer.Option(None, help="The audit key (default: <data-dir>-audit.key)."),
                 checkpoints: Path | None = typer.Option(
                     None, help="The signed checkpoints (default: <data-dir>-audit-checkpoints.jsonl)."),
                 ) -> None:
    """Check the audit log: its keyed chain (any edit, deletion, reordering or recomputation is named)
    and its signed checkpoints (a cut tail, a missing checkpoint)."""
    import sqlite3

    from devicectl.core.audit import (
        AuditKeyError,
        default_checkpoint_file,
        default_key_file,
        load_key,
        verify,
    )

    path = data_dir / "devicectl.sqlite3"
    if not path.exists():
        typer.echo(f"no database at {path}", err=True)
        raise typer.Exit(2)
    try:
        key = load_key(key_file or default_key_file(data_dir))
    except AuditKeyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    result = verify(conn, key, checkpoints or default_checkpoint_file(data_dir))
    conn.close()
    if result.ok:
        typer.echo(f"audit log intact: {result.entries} entries")
        return
    typer.echo(f"audit log BROKEN at entry {result.first_bad_id}: {result.reason}", err=True)
    raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
