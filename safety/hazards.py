"""The hazards the kernel controls; docs/safety.md keeps the table with causes, rules and tests."""

from __future__ import annotations

from enum import Enum


class Hazard(str, Enum):
    H01_OVERTREATMENT = "H01"
    H02_EXCESS_ENERGY = "H02"
    H03_UNCOMMANDED_EMISSION = "H03"
    H04_EYE_EXPOSURE = "H04"
    H05_OVERFREEZING = "H05"
    H06_CUMULATIVE_COLD = "H06"
    H07_WRONG_PATIENT_OR_CONSENT = "H07"
    H08_SUN_EXPOSED_SKIN = "H08"
    H09_INK_DARKENING = "H09"
    H10_DARK_SKIN_INJURY = "H10"
    H11_SENSITIVE_SKIN_SCARRING = "H11"
    H12_UNCALIBRATED_DEVICE = "H12"
    H13_SESSIONS_TOO_CLOSE = "H13"
    H14_LOST_INFORMATION = "H14"
    H15_DEVICE_RESET = "H15"
    H16_FAULT_REARM = "H16"
    H17_LARGE_AREA_CRYO = "H17"
    H18_OUT_OF_SCOPE_LESION = "H18"
    H19_UNSUITABLE_WAVELENGTH = "H19"
    H20_UNAUTHORISED_OPERATOR = "H20"

    @property
    def description(self) -> str:
        return TITLES[self]


TITLES: dict[Hazard, str] = {
    Hazard.H01_OVERTREATMENT: "more pulses than planned (burns, scarring, irritation)",
    Hazard.H02_EXCESS_ENERGY: "pulse energy or fluence above the plan (burns, scarring, dyspigmentation)",
    Hazard.H03_UNCOMMANDED_EMISSION: "emission nobody asked for (skin and eye injury)",
    Hazard.H04_EYE_EXPOSURE: "laser light reaching unprotected eyes (room, door, key)",
    Hazard.H05_OVERFREEZING: "a freeze too long or too cold (necrosis, scarring, hypopigmentation)",
    Hazard.H06_CUMULATIVE_COLD: "too much cold in one session (cycles, total exposure, short thaw)",
    Hazard.H07_WRONG_PATIENT_OR_CONSENT: "treating the wrong patient, or without consent",
    Hazard.H08_SUN_EXPOSED_SKIN: "treating sun-exposed skin (hyperpigmentation)",
    Hazard.H09_INK_DARKENING: "iron-oxide or titanium-dioxide ink darkening at once",
    Hazard.H10_DARK_SKIN_INJURY: "burns and dyspigmentation on dark skin",
    Hazard.H11_SENSITIVE_SKIN_SCARRING: "scarring of sensitive skin",
    Hazard.H12_UNCALIBRATED_DEVICE: "delivered dose differs from the setting (missing or failed calibration)",
    Hazard.H13_SESSIONS_TOO_CLOSE: "a session before the skin has healed from the last",
    Hazard.H14_LOST_INFORMATION: "acting on a device whose state is not known (lost events, silence)",
    Hazard.H15_DEVICE_RESET: "a device that rebooted runs without the plan's limits",
    Hazard.H16_FAULT_REARM: "treatment resuming by itself after a fault, interlock or stop",
    Hazard.H17_LARGE_AREA_CRYO: "cryo on an area larger than it is meant for",
    Hazard.H18_OUT_OF_SCOPE_LESION: "a lesion this product must not treat (malignant)",
    Hazard.H19_UNSUITABLE_WAVELENGTH: "a wavelength or ink this device cannot treat safely",
    Hazard.H20_UNAUTHORISED_OPERATOR: "treatment by someone not entitled to treat",
}
