"""The codec's two error types, as in h11: the peer's fault and our own."""

from __future__ import annotations

from .frames import BadFrameReason


class LineProtocolError(Exception):
    """Base of every error the codec raises; nothing else ever escapes it."""


class FrameError(LineProtocolError):
    """A received line is not a valid frame (the peer's fault). Carries the COMERR reason."""

    def __init__(self, reason: BadFrameReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class EncodeError(LineProtocolError):
    """We were asked to send something the protocol cannot carry (our fault)."""
