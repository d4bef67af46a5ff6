"""STATE? round trip through the driver vs the strongest baselines, and event throughput.

All clients talk to the same laser simulator, which runs in its own process on a pty:
  raw      - a blocking pyserial loop: write the pre-encoded frame, read lines until the reply
  streams  - a bare asyncio stream loop (pyserial-asyncio-fast reader/writer), no codec
  fd       - the least an asyncio client can do: the loop watches the port's descriptor, os.write,
             os.read, find the reply's LF; no codec
  driver   - LaserDriver.request("STATE?") and LaserDriver.state() (typed pydantic model)
Event throughput: PULSE events written into a pty as fast as it takes them, delivered typed to a
subscriber, vs the bare asyncio reader splitting lines. Goal: driver <= 1.25 x raw.

The simulator stands in for a unit, which has a processor of its own: on a machine with two or more
CPUs it is pinned to one CPU and the clients to another, so that no client is charged for the
simulator's context switches and cache misses on its own CPU. ``--shared-cpus`` leaves both to the
scheduler (they then often share one CPU, which inflates every client, the driver most).
Run: make bench (or .venv/bin/python bench/driver_rtt.py [round_trips] [--shared-cpus])
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import tty
from collections.abc import Callable
from pathlib import Path

import serial
import serial_asyncio_fast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import figures
from drivers import LaserDriver
from drivers.lineproto import Event, Request, encode

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
N = int(ARGS[0]) if ARGS else 4000
SHARED_CPUS = "--shared-cpus" in sys.argv
ROUNDS = 40
"""The clients take turns in short blocks of N / ROUNDS, in a new random order every round, so that
drift on a busy machine (and any advantage of going first or last) hits all of them alike."""


def frames() -> list[bytes]:
    return [encode(Request(seq, "STATE?")) for seq in range(256)]


def summary(name: str, samples: list[float]) -> dict[str, float]:
    out = figures.summary(samples, 1e6) | {"mean": statistics.fmean(samples) * 1e6}
    print(f"{name:<22} p50 {out['p50']:8.1f} us   p99 {out['p99']:8.1f} us   mean {out['mean']:8.1f} us")
    return out


def reply_end(buffer: bytes) -> int:
    """Index of the LF ending the first reply line in ``buffer`` (events may come before), or -1."""
    reply = buffer.find(b"<")
    return buffer.find(b"\n", reply) if reply >= 0 else -1


def raw_pyserial(port: str, n: int) -> list[float]:
    line = serial.Serial(port, 115200, timeout=1)
    encoded = frames()
    samples = []
    buffer = b""
    for i in range(n):
        frame = encoded[i & 0xFF]
        start = time.perf_counter()
        line.write(frame)
        while True:  # read what is waiting in one call (readline() reads byte by byte)
            buffer += line.read(line.in_waiting or 1)
            end = reply_end(buffer)
            if end >= 0:
                buffer = buffer[end + 1 :]
                break
        samples.append(time.perf_counter() - start)
    line.close()
    return samples


async def bare_asyncio(port: str, n: int) -> list[float]:
    reader, writer = await serial_asyncio_fast.open_serial_connection(url=port, baudrate=115200)
    encoded = frames()
    samples = []
    for i in range(n):
        start = time.perf_counter()
        writer.write(encoded[i & 0xFF])
        while (await reader.readuntil(b"\n"))[:1] != b"<":
            pass
        samples.append(time.perf_counter() - start)
    writer.close()
    return samples


async def bare_descriptor(port: str, n: int) -> list[float]:
    line = serial.Serial(port, 115200, timeout=0)
    fd = line.fileno()
    loop = asyncio.get_running_loop()
    encoded = frames()
    buffer = b""
    waiter: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        nonlocal buffer
        try:
            buffer += os.read(fd, 4096)
        except BlockingIOError:
            return
        end = reply_end(buffer)
        if end >= 0 and not waiter.done():
            buffer = buffer[end + 1 :]
            waiter.set_result(None)

    loop.add_reader(fd, readable)
    samples = []
    for i in range(n):
        start = time.perf_counter()
        waiter = loop.create_future()
        os.write(fd, encoded[i & 0xFF])
        await waiter
        samples.append(time.perf_counter() - start)
    loop.remove_reader(fd)
    line.close()
    return samples


async def driver_rtt(port: str, n: int, typed: bool) -> list[float]:
    driver = LaserDriver(port, heartbeat_s=None, reconnect=False)
    await driver.connect()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        if typed:
            await driver.state()
        else:
            await driver.request("STATE?")
        samples.append(time.perf_counter() - start)
    await driver.close()
    return samples


def pulse_stream(count: int) -> bytes:
    return b"".join(
        encode(Event(i & 0xFFFF, "PULSE", (("n", str(i)), ("e", "447.9"), ("set", "450"), ("t", str(i * 100)))))
        for i in range(count)
    )


async def event_throughput(count: int = 20000) -> tuple[float, float]:
    data = pulse_stream(count)

    async def feed(master: int) -> None:
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view:
            try:
                written = os.write(master, view[:4096])
                view = view[written:]
            except BlockingIOError:
                await asyncio.sleep(0)
        await loop.run_in_executor(None, lambda: None)

    def pty() -> tuple[int, str]:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        return master, os.ttyname(slave)

    # bare asyncio reader, lines only
    master, path = pty()
    reader, writer = await serial_asyncio_fast.open_serial_connection(url=path, baudrate=115200)
    start = time.perf_counter()
    feeder = asyncio.create_task(feed(master))
    for _ in range(count):
        await reader.readuntil(b"\n")
    bare = count / (time.perf_counter() - start)
    await feeder
    writer.close()
    os.close(master)

    # the driver: split, CRC, decode, EVSEQ check, typed Pulse, fan-out to a subscriber
    master, path = pty()
    driver = LaserDriver(path, heartbeat_s=None, reconnect=False)
    await driver.connect()
    received = 0
    done = asyncio.Event()

    def count_pulse(event: object) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    driver.add_listener(count_pulse)
    start = time.perf_counter()
    feeder = asyncio.create_task(feed(master))
    await asyncio.wait_for(done.wait(), 60)
    typed = count / (time.perf_counter() - start)
    await feeder
    await driver.close()
    os.close(master)
    return bare, typed


def pin_apart(simulator_pid: int) -> str:
    """Put every thread of the simulator on the last CPU and this process on the first."""
    cpus = sorted(os.sched_getaffinity(0))
    if SHARED_CPUS or len(cpus) < 2:
        return "simulator and clients share the CPUs (scheduler's choice)"
    for thread in os.listdir(f"/proc/{simulator_pid}/task"):
        os.sched_setaffinity(int(thread), {cpus[-1]})
    os.sched_setaffinity(0, {cpus[0]})  # before this process starts any thread
    return f"simulator pinned to CPU {cpus[-1]}, clients to CPU {cpus[0]}"


def main() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devicectl.cli", "sim", "laser"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    port = proc.stdout.readline().strip().split(": ", 1)[1]
    try:
        placement = pin_apart(proc.pid)
        print(f"STATE? round trip, {N} requests each in {ROUNDS} rounds (random order each round), laser simulator in its own process on {port}; {placement}")
        clients: dict[str, Callable[[int], list[float]]] = {
            "raw": lambda n: raw_pyserial(port, n),
            "bare": lambda n: asyncio.run(bare_asyncio(port, n)),
            "fd": lambda n: asyncio.run(bare_descriptor(port, n)),
            "request": lambda n: asyncio.run(driver_rtt(port, n, typed=False)),
            "state": lambda n: asyncio.run(driver_rtt(port, n, typed=True)),
        }
        results: dict[str, list[float]] = {name: [] for name in clients}
        per_round: dict[str, list[float]] = {name: [] for name in clients}  # each round's p50
        order = list(clients)
        shuffle = random.Random(1)
        for _ in range(ROUNDS):
            shuffle.shuffle(order)
            for name in order:
                samples = clients[name](N // ROUNDS)
                results[name] += samples
                per_round[name].append(statistics.median(samples))
        raw = summary("raw pyserial", results["raw"])
        bare = summary("bare asyncio streams", results["bare"])
        fd = summary("bare asyncio fd", results["fd"])
        untyped = summary("driver request()", results["request"])
        typed = summary("driver state() typed", results["state"])
        print(
            f"ratio driver/raw: request() {untyped['p50'] / raw['p50']:.2f} x, state() {typed['p50'] / raw['p50']:.2f} x (p50);"
            f" vs bare asyncio fd: {untyped['p50'] / fd['p50']:.2f} x, {typed['p50'] / fd['p50']:.2f} x;"
            f" vs streams: {untyped['p50'] / bare['p50']:.2f} x, {typed['p50'] / bare['p50']:.2f} x  (goal <= 1.25 x raw)"
        )

        def round_ratio(name: str, base: str) -> float:
            return statistics.median(a / b for a, b in zip(per_round[name], per_round[base]))

        print(
            f"median of the {ROUNDS} rounds' p50 ratios to raw: request() {round_ratio('request', 'raw'):.2f} x,"
            f" state() {round_ratio('state', 'raw'):.2f} x, streams {round_ratio('bare', 'raw'):.2f} x,"
            f" fd {round_ratio('fd', 'raw'):.2f} x"
        )
        bare_eps, typed_eps = asyncio.run(event_throughput())
        print(f"event throughput: bare asyncio lines {bare_eps:,.0f}/s, driver typed events {typed_eps:,.0f}/s"
              f" (ratio {typed_eps / bare_eps:.2f})")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
