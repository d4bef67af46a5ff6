"""CRC-16/CCITT-FALSE, the checksum of every line-protocol frame.

Polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR (line-protocol.md, "Frames").
A table keeps it cheap enough for 50 Hz telemetry from many devices.
"""

from __future__ import annotations


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _make_table()


def crc16_ccitt_false(data: bytes) -> int:
    """Return the CRC of ``data`` as an int in 0..0xFFFF."""
    crc = 0xFFFF
    table = _TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc
