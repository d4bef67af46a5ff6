"""The certificate (HTML with its plot, and its PDF) without importing matplotlib into the service at
start-up: ``certificates()`` imports it at the first certificate, in the worker thread that writes it."""

from __future__ import annotations

import functools
from pathlib import Path
from types import ModuleType

from devicectl.core import heap


@functools.cache
def certificates() -> ModuleType:
    """devicectl.calibration.certificate, imported once (matplotlib: seconds); what the import built lives
    as long as the service, so it is kept out of the full collections as start-up's is (H26, ``heap``)."""
    from devicectl.calibration import certificate

    heap.freeze_late_import()
    return certificate


def certificate_pdf(certificate: Path) -> Path:
    return certificates().certificate_pdf(certificate)  # type: ignore[no-any-return]
