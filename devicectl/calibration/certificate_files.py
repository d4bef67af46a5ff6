"""The certificate's PDF, without importing matplotlib into the service at start-up."""

from __future__ import annotations

from pathlib import Path


def certificate_pdf(certificate: Path) -> Path:
    from devicectl.calibration.certificate import (
        certificate_pdf as to_pdf,  # matplotlib: imported in the worker thread
    )

    return to_pdf(certificate)
