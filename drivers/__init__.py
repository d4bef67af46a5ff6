"""Host side of each device: the line protocol, the laser and cryo drivers, SCPI instruments."""

from .cryo import CryoDriver
from .errors import (
    Busy,
    DeviceError,
    DriverError,
    FaultActive,
    InterlockOpen,
    LinkLost,
    NotAllowedInState,
    NotConnected,
    OutOfRange,
    OwnerNotAlive,
    Preempted,
    RequestTimeout,
    UnknownCommand,
)
from .laser import LaserDriver
from .linedriver import EventSubscription, LineDriver

__all__ = [
    "Busy", "CryoDriver", "DeviceError", "DriverError", "EventSubscription", "FaultActive",
    "InterlockOpen", "LaserDriver", "LineDriver", "LinkLost", "NotAllowedInState", "NotConnected",
    "OutOfRange", "OwnerNotAlive", "Preempted", "RequestTimeout", "UnknownCommand",
]
