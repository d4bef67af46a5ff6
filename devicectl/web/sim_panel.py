"""The simulator panel's server side: only with ``devicectl serve --simulate``. A practitioner or
technician presses the simulated units' footswitch, door interlock, key, emergency stop, probe,
changes the handpiece or injects a fault, through each simulator's JSON-lines backdoor. Every
operation is audited. The routes do not exist on a real installation."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from devicectl.core.auth import User
from devicectl.core.sessions import SessionError
from simulators.backdoor import remote_call

if TYPE_CHECKING:
    from fastapi import FastAPI

    from devicectl.core.service import Service

#: what the panel offers, per unit type: backdoor operation -> allowed argument values
INPUTS = {"laser": {"foot": (0, 1), "interlock": (0, 1), "key": (0, 1), "estop": (0, 1), "spot": (2.0, 3.0, 4.0, 6.0, 8.0)},
          "cryo": {"estop": (0, 1), "probe": (0, 1)}}
FAULTS = {"laser": ("F01", "F02", "F03", "F04", "F05"), "cryo": ("C01", "C02", "C03", "C04")}


class SimBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: str = Field(pattern=r"^(set_input|inject_fault|remove_fault_cause)$")
    name: str | None = Field(None, max_length=16)
    value: float | None = None
    code: str | None = Field(None, max_length=8)


def backdoor_call(address: str, op: str, args: dict[str, Any]) -> Any:
    answer = remote_call(address, op, args, timeout=3)
    if not answer.get("ok"):
        raise SessionError(f"the simulator refused: {answer.get('error')}", 422)
    return answer.get("result")


def check(kind: str, body: SimBody) -> dict[str, Any]:
    if body.op == "set_input":
        allowed = INPUTS[kind].get(body.name or "")
        if allowed is None or body.value not in allowed:
            raise SessionError(f"the simulated {kind} has no input {body.name}={body.value}", 422)
        value = float(body.value) if body.name == "spot" else int(body.value)  # type: ignore[arg-type]
        return {"name": body.name, "value": value}
    if body.code not in FAULTS[kind]:
        raise SessionError(f"the simulated {kind} has no fault {body.code}", 422)
    return {"code": body.code}


def install(app: FastAPI, service: Service, addresses: dict[str, Any]) -> None:
    """Add the panel's routes (before the touchscreen's static files, which answer everything else)."""
    from fastapi import Depends

    from devicectl.web.api import current_user

    login = Depends(current_user)
    units = {name: (s.config.type, addresses.get(f"{s.config.type}_backdoor")) for name, s in service.supervisors.items()}

    @app.get("/api/sim")
    async def sim_offer(user: User = login) -> dict[str, Any]:
        """What the simulator panel offers for each simulated unit."""
        return {"devices": [{"name": n, "type": t, "inputs": {k: list(v) for k, v in INPUTS[t].items()}, "faults": list(FAULTS[t])}
                            for n, (t, a) in units.items() if a]}

    @app.post("/api/sim/{device}")
    async def sim_operate(device: str, body: SimBody, user: User = login) -> dict[str, Any]:
        """Press an input or inject/remove a fault cause on a simulated unit (audited)."""
        service.accounts.require(user, "practitioner", "technician", action="simulator")
        if device not in units or not units[device][1]:
            raise SessionError(f"no simulated device {device!r}", 404)
        kind, address = units[device]
        args = check(kind, body)
        result = await asyncio.to_thread(backdoor_call, address, body.op, args)
        await service.store.write(lambda conn: service.audit.append_in(conn, user.name, "simulator", device=device,
                                                                      op=body.op, **args))
        return {"ok": True, "result": result}

    routes = app.router.routes
    for route in [r for r in routes if getattr(r, "name", None) == "ui"]:  # the static files last again
        routes.remove(route)
        routes.append(route)
