"""Schemathesis fuzzes every operation of the OpenAPI schema: bad input is a clear 4xx, never 5xx."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from devicectl.api import create_app
from devicectl.config import load_settings
from devicectl.service import Service


def _service() -> tuple[Service, str]:
    service = Service(load_settings(None, data_dir=Path(tempfile.mkdtemp(prefix="devicectl-fuzz-"))))

    async def prepare() -> str:
        await service.start()
        admin = service.accounts.user_for((await service.accounts.login("admin", service.first_admin_pin or ""))[0])
        await service.accounts.change_pin(admin, service.first_admin_pin or "", "13579")
        await service.accounts.create_user(admin, "pat", "practitioner", "1111")
        return (await service.accounts.login("pat", "1111"))[0]

    return service, asyncio.run(prepare())


SERVICE, TOKEN = _service()
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(SERVICE, manage_lifecycle=False))


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=[not_a_server_error])
