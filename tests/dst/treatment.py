"""Treatment-heavy worlds: the soak figure's pulses and freezes (bench/soak.py --treatment).

Same real core, same lines, same faults and the same invariants after every step as ``World``;
only the practitioners differ. They treat as much as the plans allow: the laser is armed at once
and fired at 5 Hz with long footswitch holds until the plan's budget is spent (tattoo plans on
5-10 cm², a budget of hundreds of pulses), the cryo probe freezes cycle after cycle as soon as the
thaw allows, and a session is ended when its budget or cycles are used. STOPs, acknowledgements,
re-confirmations and early ends still happen, less often.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from devicectl.core.auth import User

from .world import ALL_CHECKED, CRYO_INDICATIONS, PRACTITIONER, SECOND_PRACTITIONER, STOP_ORIGINS, World

LASER_AREAS_CM2 = (5.0, 10.0)
LASER_RATE_HZ = 5.0


class TreatmentWorld(World):
    async def _practitioner(self, device: str, tab: int, rng: random.Random) -> None:
        user = PRACTITIONER if tab == 0 else SECOND_PRACTITIONER
        while True:
            await asyncio.sleep(rng.uniform(0.05, 1.0))
            sid = self.current[device]
            state = self._session_state(sid)
            try:
                if state in (None, "ended", "interrupted"):
                    if self.supervisors[device].kernel.locked:
                        await self.act("acknowledge", self.sessions.acknowledge_device(user, device))
                    else:
                        await self.act("plan", self.plan(device, user, rng))
                elif state == "planned":
                    await self.act("start", self.sessions.start(user, sid))
                else:
                    await self._treat(device, user, sid, rng)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the service raising is a finding
                self.checker.service_raised(f"{device} tab {tab}", exc)

    async def plan(self, device: str, user: User, rng: random.Random) -> int:
        patient = await self.sessions.new_patient(user)
        if device == "laser":
            session = await self.sessions.create(user, patient, "laser", {
                "indication": "tattoo", "skin_type": rng.choice((1, 2, 3)), "area_cm2": rng.choice(LASER_AREAS_CM2),
                "site": "back", "inks": ["black"]})
            sid = session["id"]
            await self.sessions.edit(user, sid, {"rate_hz": LASER_RATE_HZ})
        else:
            session = await self.sessions.create(user, patient, "cryo", {
                "indication": rng.choice(CRYO_INDICATIONS), "skin_type": 2, "area_cm2": 0.5, "site": "back"})
            sid = session["id"]
        await self.sessions.set_checklist(user, sid, dict(ALL_CHECKED))
        self.current[device] = sid
        return sid

    async def _treat(self, device: str, user: User, sid: int, rng: random.Random) -> None:
        kernel: Any = self.supervisors[device].kernel
        roll = rng.random()
        if kernel.plan is None:
            return
        if device == "laser":
            spent = kernel.remaining == 0
        else:
            spent = kernel.cycles_done >= kernel.cryo_plan.cycles or kernel.remaining_exposure_s < 0.5
        if spent or roll < 0.01:
            locked = kernel.locked
            await self.act("end", self.sessions.end(user, sid))
            if self._session_state(sid) == "ended":
                self.checker.after_end(device, sid, locked)
        elif roll < 0.03:
            self.actions += 1
            asyncio.ensure_future(self.sessions.stop(user, rng.choice(STOP_ORIGINS), device))
            self.checker.step()
        elif kernel.locked:
            await self.act("acknowledge", self.sessions.acknowledge(user, sid))
        elif kernel.paused:
            await self.act("reconfirm", self.sessions.reconfirm(user, sid))
        elif device == "laser":
            if not kernel.armed:
                await self.act("arm", self.sessions.arm(user, sid))
                return
            port = self.ports["laser"]
            port.call("set_input", name="foot", value=1)
            self.checker.step()
            await asyncio.sleep(rng.uniform(2.0, 20.0))
            port.call("set_input", name="foot", value=0)
            self.checker.step()
        else:
            cap = min(kernel.cryo_plan.freeze_cap_s, kernel.remaining_exposure_s)
            seconds = round(rng.uniform(max(0.5, cap / 4), cap), 1)
            await self.act("freeze", self.sessions.freeze(user, sid, seconds))
