"""Simulated cryo-probe unit CP-2 (cryo.md)."""

from .model import CryoModel, CryoState

__all__ = ["CryoModel", "CryoState"]
