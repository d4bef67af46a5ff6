"""Stateful fuzzing: schemathesis chains operations along the schema's OpenAPI links
(devicectl/web/openapi_links.py) against the running service with both simulated units, patients
and sessions: a new patient's id into a new session, the session's id into its checklist, start,
arm, freeze, end, cancel..., a proposal's id into its confirmation, a run's id into its status.
Every answer in every chain must be anything but a 5xx.

Each call is made as a role its access rule allows (``caller`` of tests/test_api_fuzz.py), on that
user's kept-alive connection as a screen calls; the harness's own users are never named in a path
(``OWN_USERS``). The sessions are the practitioner's own, so the chains run past the access rule
into the handlers. A
scenario starts with an operation that creates or lists; the operations on one session, run or
user are reached along the links. Where no link gave a value, a body mostly (4 times in 5) holds
what passes the service's checks beyond the schema (``PASSING``), so the chains go deep: a
session planned, checked, started, armed, ended.

``DEVICECTL_FUZZ_SCENARIOS`` sets the scenarios (75 in ``make test``, 500 in ``make fuzz``),
``DEVICECTL_FUZZ_STEPS`` the calls at most in each (20; 40 in ``make fuzz``).
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Flaky
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.engine.errors import is_inconsistent_replay
from schemathesis.generation.stateful.control import TransitionController
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput

from devicectl.core.config import load_settings
from devicectl.core.service import Service
from devicectl.web.api import create_app
from devicectl.web.openapi_links import LINKS, Link, add_links
from safety.plans import Indication
from tests.service_harness import ALL_CHECKED
from tests.test_api_fuzz import NOT_FUZZED, System, caller, running_fuzz_system

SCENARIOS = int(os.environ.get("DEVICECTL_FUZZ_SCENARIOS", "75"))
STEPS = int(os.environ.get("DEVICECTL_FUZZ_STEPS", "20"))
#: the harness's own users: never named in a path (a PIN reset or a deactivation ends their logins)
OWN_USERS = ("admin", "pat", "tech")
#: (method, path) -> body fields that pass the service's own checks
PASSING: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/sessions"): {"area_cm2": 0.5},
    ("PUT", "/api/sessions/{session_id}/checklist"): ALL_CHECKED,
    ("POST", "/api/users"): {"pin": "480913"},
    ("POST", "/api/users/{name}/pin"): {"pin": "480913"},
}


class StartsUnlinked(TransitionController):
    """A scenario starts with an operation no link leads to (one that creates or lists): the others
    are called with what the links give them (a patient, a session, a device, a proposal...)."""

    __slots__ = ()

    def allow_root_transition(self, source: str, bundles: Any) -> bool:
        links = self.transitions.operations.get(source)
        return not (links and links.incoming) and super().allow_root_transition(source, bundles)


@pytest.fixture(scope="module")
def stateful_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_fuzz_system(tmp_path_factory.mktemp("fuzz-stateful")) as system:
        yield system


@dataclass
class Tally:
    scenarios: int = 0
    failures: list[str] = field(default_factory=list)  # every 5xx: "METHOD path: the check's report"
    followed: Counter[str] = field(default_factory=Counter)  # links whose values were used, by transition
    answers: Counter[str] = field(default_factory=Counter)  # "METHOD path status"


def run_scenarios(machine: Any, tally: Tally) -> int:
    """Run ``machine`` until SCENARIOS scenarios ran or a 5xx was found; the runs it took.

    Hypothesis stops a run as inconsistent when the service answers a path it took before otherwise
    (its state changed: a name taken, a session started); the next run goes on, as schemathesis'
    own runner does. A 5xx is in ``tally.failures`` whether or not Hypothesis' replay reproduces it."""
    runs = 0
    while tally.scenarios < SCENARIOS and not tally.failures:
        runs += 1
        machine.rule_order_seed = runs  # each run opens its scenarios with other operations
        before = tally.scenarios
        try:
            machine.run(settings=settings(max_examples=SCENARIOS - tally.scenarios, stateful_step_count=STEPS,
                                          phases=[Phase.generate], deadline=None, database=None,
                                          suppress_health_check=list(HealthCheck)))
        except (Flaky, AssertionError) as exc:
            if not (isinstance(exc, Flaky) or is_inconsistent_replay(exc)):
                raise
        except FailureGroup:
            assert tally.failures
        assert tally.scenarios > before, "a run executed no scenario"
    return runs


def test_linked_operations_never_answer_5xx(stateful_system: System) -> None:
    """SCENARIOS chains of at most STEPS calls along the links; every 5xx is listed at the end."""
    service, users, known = stateful_system
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json").exclude(path=list(NOT_FUZZED))
    schema.config.phases.stateful.inference.algorithms = []  # the schema's own links, none guessed
    workflow: Any = schema.as_state_machine()
    device_for = {i.value: i.modality.value for i in Indication}  # the simulated units are named by their type
    turn = itertools.count()
    tally = Tally()
    connections = {api.token: requests.Session() for api in users.values()}

    def passing(case: schemathesis.Case, linked: set[tuple[ParameterLocation, str | None]]) -> None:
        """Mostly values that pass the service's checks, in the body fields no link set."""
        body = case.body
        if not isinstance(body, dict) or not next(turn) % 5:
            return
        fields = dict(PASSING.get((case.method.upper(), case.path), {}))
        if isinstance(body.get("device"), str):  # one that exists (and fits the indication)
            fields["device"] = device_for.get(body.get("indication"), known["device"][next(turn) % 2])
        if "indication" in body:  # ink colours only for a tattoo
            fields["inks"] = ["black"] if body["indication"] == "tattoo" else []
        body.update({k: v for k, v in fields.items() if (ParameterLocation.BODY, k) not in linked})

    class Fuzz(workflow):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            tally.scenarios += 1
            self.control = StartsUnlinked(self._transitions, self._root_labels)
            self.trail: list[str] = []  # this scenario's calls so far (a 5xx is reported with them)

        def step(self, input: StepInput) -> StepOutput:
            case = input.case
            passing(case, set(input.applied_parameters))
            if (case.path_parameters or {}).get("name") in OWN_USERS:
                case.path_parameters["name"] = "nobody"  # type: ignore[index]
            if input.transition is not None and input.is_applied:
                tally.followed[input.transition.id] += 1
            output = super().step(input)
            tally.answers[f"{case.method.upper()} {case.path} {output.response.status_code}"] += 1
            return output

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            api = caller(case, users)  # on the user's kept-alive connection, as a screen calls
            return {"headers": {"Authorization": f"Bearer {api.token}"}, "session": connections[api.token]}

        def validate_response(self, response: Any, case: schemathesis.Case, additional_checks: Any = None,
                              **kwargs: Any) -> None:
            body = "" if case.body is NOT_SET else f" {str(case.body)[:300]}"
            self.trail.append(f"{case.method.upper()} {case.formatted_path}{body} -> {response.status_code}")
            try:
                case.validate_response(response, checks=[not_a_server_error], recorder=self.recorder)
            except FailureGroup as failure:
                steps = "\n  ".join(self.trail)
                tally.failures.append(f"{case.method.upper()} {case.path}: {str(failure)[:1500]}\nafter:\n  {steps}")
                raise

    try:
        runs = run_scenarios(Fuzz, tally)
    finally:
        for connection in connections.values():
            connection.close()
    print(f"{sum(tally.answers.values())} calls in {tally.scenarios} scenarios ({runs} runs), "
          f"{sum(tally.followed.values())} along {len(tally.followed)} of the {len(LINKS)} links")
    for line in sorted(tally.answers):
        print(f"  {tally.answers[line]:5} {line}")
    for link in sorted(tally.followed):
        print(f"  {tally.followed[link]:5} along {link}")
    assert not tally.failures, "\n\n".join(tally.failures)
    assert len(tally.followed) >= len(LINKS) // 4, f"only {len(tally.followed)} links followed: {sorted(tally.followed)}"


def declared_links(schema: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(source, status, target) -> the link's definition, every operation as "METHOD /path"."""
    by_id = {op["operationId"]: f"{method.upper()} {path}" for path, ops in schema["paths"].items()
             for method, op in ops.items()}
    return {(f"{method.upper()} {path}", status, by_id[link["operationId"]]): link
            for path, ops in schema["paths"].items() for method, op in ops.items()
            for status, response in op["responses"].items() for link in response.get("links", {}).values()}


def test_the_schema_declares_the_links_between_operations(tmp_path: Path) -> None:
    """/openapi.json carries every row of LINKS, the chains the stateful fuzzer follows among them, and
    schemathesis reads them all (an expression naming no parameter of its target fails its loading)."""
    schema = TestClient(create_app(Service(load_settings(None, data_dir=tmp_path)), manage_lifecycle=False)) \
        .get("/openapi.json").json()
    links = declared_links(schema)
    assert set(links) == {(link.source, link.status, link.target) for link in LINKS}
    assert links["POST /api/patients", "201", "POST /api/sessions"]["requestBody"] == \
        {"patient_id": "$response.body#/patient_id"}
    session = {"session_id": "$response.body#/id"}
    for step in ("GET /api/sessions/{session_id}", "PUT /api/sessions/{session_id}/checklist",
                 "POST /api/sessions/{session_id}/start", "POST /api/sessions/{session_id}/arm",
                 "POST /api/sessions/{session_id}/edit", "POST /api/sessions/{session_id}/end",
                 "POST /api/sessions/{session_id}/cancel"):
        assert links["POST /api/sessions", "201", step]["parameters"] == session
    for history in ("GET /api/patients/{patient_id}/history", "GET /api/patients/{patient_id}/last-plan"):
        assert links["POST /api/patients", "201", history]["parameters"] == {"patient_id": "$response.body#/patient_id"}
    assert links["PUT /api/sessions/{session_id}/checklist", "200", "POST /api/sessions/{session_id}/start"]
    assert links["POST /api/sessions/{session_id}/start", "200", "POST /api/sessions/{session_id}/arm"]
    assert links["POST /api/calibrations/external", "202", "POST /api/calibrations/external/{proposal_id}/confirm"][
        "parameters"] == {"proposal_id": "$response.body#/id"}
    assert links["POST /api/calibration-runs", "201", "GET /api/calibration-runs/{run_id}"]["parameters"] == \
        {"run_id": "$response.body#/id"}
    loaded = schemathesis.openapi.from_dict(schema)
    loaded.config.phases.stateful.inference.algorithms = []
    assert loaded.statistic.transitions.total == len(LINKS)
    loaded.as_state_machine()  # raises on a link it cannot follow


@pytest.mark.parametrize("link, problem", [
    (Link("POST /api/patients", "201", "POST /api/nowhere"), "no operation POST /api/nowhere"),
    (Link("POST /api/patients", "200", "POST /api/sessions"), "declares no 200 answer"),
    (Link("POST /api/patients", "201", "GET /api/sessions/{session_id}", {"id": "$response.body#/id"}), "no parameter"),
    (Link("POST /api/patients", "201", "GET /api/overview", body={"x": "$response.body#/x"}), "takes no body"),
    (Link("POST /api/patients", "201", "POST /api/sessions", body={"patient_id": "$response.body#/id"}), "twice"),
])
def test_a_link_to_nothing_fails_the_schema(tmp_path: Path, link: Link, problem: str) -> None:
    """A row naming an operation, an answer or a parameter that does not exist is an error, never a link dropped."""
    schema = create_app(Service(load_settings(None, data_dir=tmp_path)), manage_lifecycle=False).openapi()
    with pytest.raises(ValueError, match=problem):
        add_links(schema, (link,))
