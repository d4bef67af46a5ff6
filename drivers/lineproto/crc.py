"""CRC-16/CCITT-FALSE, the checksum of every line-protocol frame.

Polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR (line-protocol.md, "Frames").
The standard library's ``binascii.crc_hqx`` is exactly this CRC when started at 0xFFFF, in C.
"""

from __future__ import annotations

from binascii import crc_hqx


def crc16_ccitt_false(data: bytes) -> int:
    """Return the CRC of ``data`` as an int in 0..0xFFFF."""
    return crc_hqx(data, 0xFFFF)
