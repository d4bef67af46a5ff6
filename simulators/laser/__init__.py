"""Simulated Q-switched laser unit QS-1064 (laser.md)."""

from .model import LaserModel, LaserState

__all__ = ["LaserModel", "LaserState"]
