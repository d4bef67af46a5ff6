"""Schemathesis fuzzes every operation of the OpenAPI schema against the running service, with
both simulated units connected, patients and sessions (planned, active, ended) present: bad
input is a clear 4xx, never a 5xx. Only the service's own validation errors are 422; anything
unexpected is a 500, which fails here.

Cases are positive (valid by the schema) and negative (invalid). Each operation is called as a role its access rule allows (devicectl/web/access.py: a refused 403
would stop the handler at the door) and path parameters mostly name things that exist (a
session, a patient, a device), so handlers run past their 404s.

``DEVICECTL_FUZZ_EXAMPLES`` sets the examples per operation: 25 in ``make test``, 100 in ``make fuzz``.
Each case stands alone; tests/test_api_fuzz_stateful.py chains operations along the schema's OpenAPI
links (devicectl/web/openapi_links.py) on the same kind of system (``running_fuzz_system``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from devicectl.web.access import rule
from tests.service_harness import ALL_CHECKED, Api, BenchProcess, ServiceProcess, laser_session, set_up_users

EXAMPLES = int(os.environ.get("DEVICECTL_FUZZ_EXAMPLES", "25"))
#: operations that would end the fuzzer's own logins
NOT_FUZZED = ("/api/logout",)

System = tuple[ServiceProcess, dict[str, Api], dict[str, list[Any]]]


@contextlib.contextmanager
def running_fuzz_system(root: Path) -> Iterator[System]:
    """The service on the simulated bench with both units, its three users, and sessions planned,
    active (laser) and planned (cryo); ``known`` names what exists, by path parameter."""
    bench = BenchProcess(root)
    service = ServiceProcess(root, bench).start(users=True)
    try:
        admin, practitioner, technician = set_up_users(service, bench)
        planned = laser_session(practitioner)
        active = laser_session(practitioner)
        practitioner.call("PUT", f"/api/sessions/{active}/checklist", json=ALL_CHECKED)
        practitioner.call("POST", f"/api/sessions/{active}/start")
        patient = practitioner.call("GET", f"/api/sessions/{planned}")["patient_id"]
        cryo = practitioner.call("POST", "/api/sessions", 201, json={
            "patient_id": patient, "device": "cryo", "indication": "age_wart", "skin_type": 2, "area_cm2": 0.5,
            "site": "back"})["id"]
        known = {"session_id": [planned, active, cryo], "patient_id": [patient], "device": ["laser", "cryo"],
                 "name": ["nobody"], "run_id": [1], "record_id": [1, 2], "proposal_id": [1]}
        yield service, {"admin": admin, "practitioner": practitioner, "technician": technician}, known
    finally:
        service.stop()
        bench.stop()


@pytest.fixture(scope="module")
def fuzz_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_fuzz_system(tmp_path_factory.mktemp("fuzz")) as system:
        yield system


_turn = itertools.count()


def caller(case: Any, users: dict[str, Api]) -> Api:
    """A user of a role the operation's access rule allows (public routes: the practitioner), roles taken in turn."""
    allowed = rule(case.method.upper(), case.path)
    if not isinstance(allowed, tuple):  # public, or the route checks the login itself
        allowed = ("practitioner",)
    return users[allowed[next(_turn) % len(allowed)]]


def test_no_operation_answers_5xx(fuzz_system: System) -> None:
    """Every operation, EXAMPLES cases each; the 5xx found are listed together at the end."""
    service, users, known = fuzz_system
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    for operation in operations:
        if operation.path in NOT_FUZZED:
            continue

        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
               | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            for key in list(case.path_parameters or {}):
                values = known.get(key)
                pick = zlib.crc32(str(case.path_parameters[key]).encode())
                if values and pick % 5:  # mostly something that exists
                    case.path_parameters[key] = values[pick % len(values)]
            api = caller(case, users)
            response = case.call_and_validate(headers={"Authorization": f"Bearer {api.token}"}, checks=[not_a_server_error])
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 (each operation's failure is reported, the others still run)
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    print(f"fuzzed {len(operations)} operations, {sum(statuses.values())} calls: {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(failures)
