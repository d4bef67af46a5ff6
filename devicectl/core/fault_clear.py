"""Clearing a latched device fault: a technician's procedure, audited.

The unit latches a fault (``line-protocol.md``: ``FAULT?``, ``FAULT CLEAR``) and refuses to emit or
freeze until it is cleared, which it accepts only once the fault's cause is gone. The procedure:
read ``FAULT?``, show the cause in words and what to do about it, clear it with the technician's
reason, then verify that the unit reports no fault and its idle state. It is refused while a
session is open on the device (a practitioner sees "call a technician" instead).

Clearing the unit's fault does not acknowledge the service's own lock-out of the device: that
stays a separate, audited step (``/api/devices/{device}/acknowledge``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devicectl.core.auth import AuthError, User
from devicectl.core.sessions import SessionError
from drivers import DriverError, FaultActive

if TYPE_CHECKING:
    from devicectl.core.service import Service
    from devicectl.core.supervisor import DeviceSupervisor


@dataclass(frozen=True)
class FaultAdvice:
    code: str
    word: str
    cause: str
    what_to_do: str


#: every latched fault of the ICDs (laser.md, cryo.md), in words a technician acts on
FAULTS: dict[str, FaultAdvice] = {advice.code: advice for advice in (
    FaultAdvice("F01", "lamp", "The flashlamp did not fire when it should have.",
                "Check the flashlamp and its connector; replace a worn lamp (service manual), then clear the fault "
                "and run a laser calibration."),
    FaultAdvice("F02", "energy-deviation", "Three pulses in a row left the laser more than 20 % away from the set energy.",
                "Do not treat: check the optics and the flashlamp, then clear the fault and run a laser calibration "
                "before the next treatment."),
    FaultAdvice("F03", "overtemp", "The laser head is above 40 °C (the fault can be cleared below 35 °C).",
                "Let the head cool down with the coolant running; check the coolant level and that the air vents are "
                "free, then clear the fault."),
    FaultAdvice("F04", "coolant", "The coolant flow was lost.",
                "Check the coolant level, the pump and the hoses for kinks or leaks; refill or repair, then clear the "
                "fault."),
    FaultAdvice("F05", "shutter", "The shutter did not close when commanded.",
                "Do not treat: the beam may not be blocked. Have the shutter repaired (service manual), then clear "
                "the fault."),
    FaultAdvice("C01", "sensor-open", "The tip thermocouple reads an open circuit.",
                "Check that the probe is fully seated and its thermocouple connector is clean; replace a broken probe, "
                "then clear the fault and run a cryo calibration."),
    FaultAdvice("C02", "valve-stuck", "The tip kept cooling more than 2 s after the valve was commanded shut.",
                "Close the cylinder valve, let the tip thaw, and have the valve serviced; then clear the fault."),
    FaultAdvice("C03", "cryogen-empty", "The cryogen level is below 2 %.",
                "Replace or refill the cryogen cylinder, then clear the fault."),
    FaultAdvice("C04", "overpressure", "The supply pressure is above 60 bar.",
                "Check the cylinder's pressure regulator and the supply line; vent or replace the regulator, then "
                "clear the fault."),
)}

#: the state a unit reports once its fault is cleared (laser.md, cryo.md)
IDLE_STATE = {"laser": "STANDBY", "cryo": "IDLE"}
CALL_A_TECHNICIAN = "Call a technician: only a technician may clear a device fault."


def advice_for(code: str, text: str) -> dict[str, Any]:
    """The fault in words; an unknown code is shown with the unit's own word."""
    known = FAULTS.get(code)
    if known is None:
        return {"code": code, "text": text, "cause": f"The unit reports fault {code} ({text}), which this software "
                "does not know.", "what_to_do": "See the unit's service manual, then clear the fault."}
    return {"code": code, "text": text, "cause": known.cause, "what_to_do": known.what_to_do}


def _supervisor(service: Service, device: str) -> DeviceSupervisor:
    supervisor = service.supervisors.get(device)
    if supervisor is None:
        raise SessionError(f"no device named {device!r}", 404)
    return supervisor


def _usable(supervisor: DeviceSupervisor) -> None:
    name = supervisor.config.name
    if supervisor.status.refused:
        raise SessionError(supervisor.status.refused)
    if not supervisor.driver.connected or not supervisor.status.connected:
        raise SessionError(f"{name} is not connected: check its cable and power; it reconnects by itself")


async def read_fault(service: Service, user: User, device: str) -> dict[str, Any]:
    """``FAULT?`` in words; a practitioner is told to call a technician."""
    supervisor = _supervisor(service, device)
    _usable(supervisor)
    try:
        status = await supervisor.driver.fault()
    except DriverError as exc:
        raise SessionError(f"{device} did not answer FAULT?: {exc}") from None
    technician = user.role == "technician"
    out: dict[str, Any] = {"device": device, "active": status.active, "state": supervisor.status.state,
                           "can_clear": technician and status.active}
    if status.active:
        out |= advice_for(status.code, status.text)
        if not technician:
            out["advice"] = CALL_A_TECHNICIAN
    blocked = _blocked_by(supervisor)
    if blocked and status.active:
        out["can_clear"] = False
        out["blocked"] = blocked
    return out


def _blocked_by(supervisor: DeviceSupervisor) -> str | None:
    if supervisor.session_id is not None:
        return (f"session {supervisor.session_id} is open on {supervisor.config.name}: end it first "
                "(a fault is never cleared under a treatment)")
    if supervisor.kernel.armed:
        return f"{supervisor.config.name} is armed: STOP it first"
    return None


async def clear_fault(service: Service, user: User, device: str, reason: str) -> dict[str, Any]:
    """Clear the latched fault with the technician's reason; verify the unit afterwards."""
    supervisor = _supervisor(service, device)
    if user.role != "technician":
        await service.audit.append(user.name, "refused", attempted="fault.clear", device=device, role=user.role,
                             reason=CALL_A_TECHNICIAN)
        raise AuthError(CALL_A_TECHNICIAN, 403)
    service.accounts.require(user, "technician", action="fault.clear")
    reason = reason.strip()
    if len(reason) < 3:
        raise SessionError("give the reason for clearing the fault (what was found and done)", 422)
    blocked = _blocked_by(supervisor)
    if blocked:
        await service.audit.append(user.name, "fault.clear.refused", device=device, reason=blocked)
        raise SessionError(blocked)
    _usable(supervisor)
    driver = supervisor.driver
    try:
        before = await driver.fault()
    except DriverError as exc:
        raise SessionError(f"{device} did not answer FAULT?: {exc}") from None
    if not before.active:
        raise SessionError(f"{device} has no latched fault (FAULT? answered {before.code})")
    advice = advice_for(before.code, before.text)
    try:
        await driver.clear_fault()
    except FaultActive:
        why = f"the cause of {before.code} ({before.text}) is still present: {advice['what_to_do']}"
        await service.audit.append(user.name, "fault.clear.refused", device=device, code=before.code, reason=why,
                             technician_reason=reason)
        raise SessionError(f"{device} kept its fault: {why}") from None
    except DriverError as exc:
        await service.audit.append(user.name, "fault.clear.failed", device=device, code=before.code, error=str(exc))
        raise SessionError(f"{device} did not accept FAULT CLEAR: {exc}") from None
    try:  # verify: what the unit reports now, not what its reply said
        after = await driver.fault()
        state = (await driver.state()).state.value
    except DriverError as exc:
        await service.audit.append(user.name, "fault.clear.unverified", device=device, code=before.code, error=str(exc))
        raise SessionError(f"{device} cleared the fault but could not be verified: {exc}; read its fault again") from None
    verified = not after.active and state == IDLE_STATE[supervisor.config.type]
    if not after.active:
        supervisor.status.fault = None
    supervisor.status.state = state
    await service.audit.append(user.name, "fault.cleared" if verified else "fault.clear.unverified", device=device,
                         serial=supervisor.status.serial, code=before.code, text=before.text, reason=reason,
                         state=state, fault_after=after.code)
    supervisor._publish_status()
    out = {"device": device, "cleared": before.code, "verified": verified, "state": state,
           "fault_after": None if not after.active else advice_for(after.code, after.text), "cause": advice["cause"]}
    if supervisor.kernel.locked:
        out["locked"] = supervisor.kernel.locked
        out["next"] = "the device is still locked by the service: acknowledge the lock-out once the cause is dealt with"
    return out
