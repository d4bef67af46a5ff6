"""The ``devicectl`` command line."""

from __future__ import annotations

import asyncio
import signal
from enum import Enum
from typing import Optional

import typer

from simulators.host import SimulatorHost
from simulators.units import build_unit

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Treatment device control.")
sim_app = typer.Typer(no_args_is_help=True, help="Run device simulators in the foreground.")
app.add_typer(sim_app, name="sim")


class Cryogen(str, Enum):
    N2O = "N2O"
    LN2 = "LN2"


def _port_option(help_text: str) -> Optional[int]:
    return typer.Option(None, min=0, max=65535, help=help_text)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@sim_app.command("laser")
def sim_laser(
    tcp: Optional[int] = _port_option("Also serve the line on TCP (0 picks a free port)."),
    backdoor: Optional[int] = _port_option("Serve the JSON-lines backdoor on this port (0: free)."),
    seed: int = typer.Option(0, help="Seed of the simulated noise."),
    link: Optional[str] = typer.Option(None, help="Symlink this path to the pty (stable across replugs)."),
    serial: str = typer.Option("QS1064-0001", help="Serial number reported by IDN?."),
) -> None:
    """The Q-switched laser QS-1064 on a pty (and TCP)."""
    _serve("laser", tcp, backdoor, seed, link, serial=serial)


@sim_app.command("cryo")
def sim_cryo(
    tcp: Optional[int] = _port_option("Also serve the line on TCP (0 picks a free port)."),
    backdoor: Optional[int] = _port_option("Serve the JSON-lines backdoor on this port (0: free)."),
    seed: int = typer.Option(0, help="Seed of the simulated noise."),
    link: Optional[str] = typer.Option(None, help="Symlink this path to the pty (stable across replugs)."),
    cryogen: Cryogen = typer.Option(Cryogen.N2O, help="Cryogen of the unit."),
    serial: str = typer.Option("CP2-0001", help="Serial number reported by IDN?."),
) -> None:
    """The cryo-probe unit CP-2 on a pty (and TCP)."""
    _serve("cryo", tcp, backdoor, seed, link, serial=serial, cryogen=cryogen.value)


def _serve(kind: str, tcp: Optional[int], backdoor: Optional[int], seed: int, link: Optional[str], **options: str) -> None:
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
) -> None:
    """Laser, cryo, energy meter and thermometer on one simulated bench."""
    from simulators.bench import build_bench

    async def main() -> None:
        bench = build_bench(seed=seed, tcp=tcp, instrument_ports=(meter_port, thermometer_port))
        for name, address in (await bench.start()).items():
            typer.echo(f"{name}: {address}")
        typer.echo("bench running; press Ctrl-C to stop", err=True)
        await _until_signalled()
        await bench.stop()

    asyncio.run(main())


@app.command("run-simulators")
def run_simulators() -> None:
    """The whole simulated bench (what `make run` starts until the service lands)."""
    sim_bench(seed=0, tcp=True, meter_port=0, thermometer_port=0)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
