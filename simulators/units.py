"""Build a simulated unit of a given kind with its backdoor."""

from __future__ import annotations

import random
from typing import Any, Literal

from .backdoor import Backdoor, CryoBackdoor, LaserBackdoor
from .cryo.model import CryoModel
from .engine import LineUnit
from .laser.model import LaserModel

DeviceKind = Literal["laser", "cryo"]


def build_unit(kind: DeviceKind, seed: int = 0, now: float = 0.0, **options: Any) -> tuple[LineUnit, Backdoor]:
    """A unit of ``kind`` and its backdoor; options: ``serial``, and ``cryogen`` for cryo."""
    rng = random.Random(seed)
    if kind == "laser":
        unit = LineUnit(LaserModel(rng, **options), seed=seed, now=now)
        return unit, LaserBackdoor(unit)
    if kind == "cryo":
        unit = LineUnit(CryoModel(rng, **options), seed=seed, now=now)
        return unit, CryoBackdoor(unit)
    raise ValueError(f"unknown device kind {kind!r}")
