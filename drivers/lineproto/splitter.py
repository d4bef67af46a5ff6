"""Turn an arbitrary byte stream into frames; sans-I/O.

``feed(bytes)`` may be called with any slicing of the stream (a byte at a time, many lines at
once). Each complete line becomes a frame or a ``BadFrame`` with its reason; garbage never raises
and never grows the buffer past one frame: an over-long line is discarded up to its LF and
reported once as ``length``.
"""

from __future__ import annotations

from .codec import MAX_FRAME_BYTES, decode
from .errors import FrameError
from .frames import BadFrame, BadFrameReason, Frame


class FrameSplitter:
    """Accumulates bytes; yields ``Frame | BadFrame`` for each line completed by LF."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False  # inside a line already reported as too long

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        out: list[Frame | BadFrame] = []
        buffer = self._buffer
        start = 0
        while True:
            lf = data.find(b"\n", start)
            if lf < 0:
                self._append_partial(data[start:], out)
                return out
            piece = data[start : lf + 1]
            start = lf + 1
            if self._discarding:
                self._discarding = False
                buffer.clear()
                continue
            if buffer:
                buffer += piece
                line = bytes(buffer)
                buffer.clear()
            else:
                line = piece
            out.append(self._decode(line))

    def _append_partial(self, tail: bytes, out: list[Frame | BadFrame]) -> None:
        if self._discarding or not tail:
            return
        self._buffer += tail
        if len(self._buffer) >= MAX_FRAME_BYTES:  # no room left for the LF
            head = bytes(self._buffer[:32])
            self._buffer.clear()
            self._discarding = True
            out.append(BadFrame(BadFrameReason.LENGTH, f"line exceeds {MAX_FRAME_BYTES} bytes", head))

    @staticmethod
    def _decode(line: bytes) -> Frame | BadFrame:
        try:
            return decode(line)
        except FrameError as exc:
            return BadFrame(exc.reason, exc.detail, line)

    @property
    def pending(self) -> int:
        """Bytes held of an unfinished line."""
        return len(self._buffer)
