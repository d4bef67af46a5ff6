"""OpenAPI links: which answer feeds which next call. A new patient's id goes into a new session's
body, a session's id into every step of its workflow, a proposal's id into its confirmation, a
run's id into its status. Clients and tools that chain operations (schemathesis' stateful tests,
tests/test_api_fuzz_stateful.py) read them from ``/openapi.json``.

The links are data: ``LINKS``, one row each (source operation, its status, target operation, the
target's parameters and body fields as OpenAPI runtime expressions). ``install`` adds them to the
schema FastAPI generates, naming each target by its operationId; a row naming an operation or a
parameter that does not exist fails the schema's build (ValueError), never a link dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from fastapi import FastAPI


class Link(NamedTuple):
    source: str  #: "METHOD /path"
    status: str  #: the source's answer the values are read from
    target: str  #: "METHOD /path"
    parameters: Mapping[str, str] = {}  #: the target's path or query parameter -> runtime expression
    body: Mapping[str, str] | None = None  #: fields of the target's request body -> runtime expression


SESSION = {"session_id": "$response.body#/id"}
GET_SESSION = "GET /api/sessions/{session_id}"
EDIT, CHECKLIST = "POST /api/sessions/{session_id}/edit", "PUT /api/sessions/{session_id}/checklist"
START, ARM, FREEZE = ("POST /api/sessions/{session_id}/start", "POST /api/sessions/{session_id}/arm",
                      "POST /api/sessions/{session_id}/freeze")
ACKNOWLEDGE, RECONFIRM = "POST /api/sessions/{session_id}/acknowledge", "POST /api/sessions/{session_id}/reconfirm"
END, CLOSE, CANCEL = ("POST /api/sessions/{session_id}/end", "POST /api/sessions/{session_id}/close",
                      "POST /api/sessions/{session_id}/cancel")
HISTORY, LAST_PLAN = "GET /api/patients/{patient_id}/history", "GET /api/patients/{patient_id}/last-plan"

#: a session's workflow: each operation answering with the session links to what may come next
#: (the planned session to every step; the service answers a step out of order with a clear 4xx)
SESSION_FLOW: dict[tuple[str, str], tuple[str, ...]] = {
    ("POST /api/sessions", "201"): (GET_SESSION, EDIT, CHECKLIST, START, ARM, FREEZE, ACKNOWLEDGE, RECONFIRM, END,
                                    CLOSE, CANCEL),
    (GET_SESSION, "200"): (EDIT, CHECKLIST, START, ARM, FREEZE, END, CANCEL),
    (EDIT, "200"): (EDIT, CHECKLIST, START, CANCEL),
    (CHECKLIST, "200"): (CHECKLIST, EDIT, START, CANCEL),
    (START, "200"): (ARM, FREEZE, EDIT, END, GET_SESSION),
    (ARM, "200"): (ARM, END, RECONFIRM, ACKNOWLEDGE, GET_SESSION),
    (FREEZE, "200"): (FREEZE, END, GET_SESSION),
    (ACKNOWLEDGE, "200"): (ARM, FREEZE, END),
    (RECONFIRM, "200"): (ARM, FREEZE, END),
    (END, "200"): (GET_SESSION, CLOSE, CANCEL, ARM),
    (CLOSE, "200"): (GET_SESSION,),
    (CANCEL, "200"): (GET_SESSION, START),
}

#: the first device listed (GET /api/devices) to its own operations
FIRST_DEVICE = {"device": "$response.body#/0/name"}
DEVICE_OPERATIONS = ("GET /api/devices/{device}/fault", "POST /api/devices/{device}/fault/clear",
                     "GET /api/devices/{device}/service-mode", "PUT /api/devices/{device}/service-mode",
                     "POST /api/devices/{device}/acknowledge")
CERTIFICATES = ("GET /api/calibrations/{record_id}/certificate.html", "GET /api/calibrations/{record_id}/certificate.pdf")
NEW_USER = {"name": "$request.body#/name"}  # the created user (the answer holds only its number)

LINKS: tuple[Link, ...] = (
    # patients
    Link("POST /api/patients", "201", "POST /api/sessions", body={"patient_id": "$response.body#/patient_id"}),
    Link("POST /api/patients", "201", HISTORY, {"patient_id": "$response.body#/patient_id"}),
    Link("POST /api/patients", "201", LAST_PLAN, {"patient_id": "$response.body#/patient_id"}),
    Link("GET /api/patients", "200", HISTORY, {"patient_id": "$response.body#/0/patient_id"}),
    Link("POST /api/sessions", "201", HISTORY, {"patient_id": "$response.body#/patient_id"}),
    Link("POST /api/sessions", "201", LAST_PLAN, {"patient_id": "$response.body#/patient_id", "site": "$request.body#/site"}),
    Link(END, "200", HISTORY, {"patient_id": "$response.body#/patient_id"}),
    Link("GET /api/overview", "200", GET_SESSION, {"session_id": "$response.body#/open_sessions/0/id"}),
    # sessions
    *(Link(source, status, target, SESSION) for (source, status), targets in SESSION_FLOW.items() for target in targets),
    # devices
    *(Link("GET /api/devices", "200", target, FIRST_DEVICE) for target in DEVICE_OPERATIONS),
    Link("GET /api/devices", "200", "POST /api/calibration-runs", body={"device": "$response.body#/0/name"}),
    Link("GET /api/devices", "200", "POST /api/calibrations/measured",
         body={"device_serial": "$response.body#/0/serial", "device_kind": "$response.body#/0/kind"}),
    Link("GET /api/devices", "200", "POST /api/calibrations/external",
         body={"device_serial": "$response.body#/0/serial", "device_kind": "$response.body#/0/kind"}),
    # calibrations
    Link("POST /api/calibrations/external", "202", "POST /api/calibrations/external/{proposal_id}/confirm",
         {"proposal_id": "$response.body#/id"}),
    Link("GET /api/calibrations/external", "200", "POST /api/calibrations/external/{proposal_id}/confirm",
         {"proposal_id": "$response.body#/0/id"}),
    *(Link("POST /api/calibrations/external/{proposal_id}/confirm", "201", target, {"record_id": "$response.body#/id"})
      for target in CERTIFICATES),
    *(Link("POST /api/calibrations/measured", "201", target, {"record_id": "$response.body#/id"}) for target in CERTIFICATES),
    *(Link("GET /api/calibrations", "200", target, {"record_id": "$response.body#/0/id"}) for target in CERTIFICATES),
    # calibration runs
    Link("POST /api/calibration-runs", "201", "GET /api/calibration-runs/{run_id}", {"run_id": "$response.body#/id"}),
    Link("POST /api/calibration-runs", "201", "POST /api/calibration-runs/{run_id}/cancel", {"run_id": "$response.body#/id"}),
    Link("GET /api/calibration-runs", "200", "GET /api/calibration-runs/{run_id}", {"run_id": "$response.body#/0/id"}),
    Link("GET /api/calibration-runs/{run_id}", "200", "POST /api/calibration-runs/{run_id}/cancel",
         {"run_id": "$response.body#/id"}),
    Link("GET /api/calibration-runs/{run_id}", "200", CERTIFICATES[0], {"record_id": "$response.body#/record_id"}),
    # users
    *(Link("POST /api/users", "201", target, NEW_USER)
      for target in ("POST /api/users/{name}/unlock", "POST /api/users/{name}/deactivate", "POST /api/users/{name}/pin")),
)


def _operation(schema: dict[str, Any], name: str) -> dict[str, Any]:
    method, path = name.split(" ", 1)
    operation = schema["paths"].get(path, {}).get(method.lower())
    if operation is None:
        raise ValueError(f"OpenAPI link: no operation {name}")
    return operation  # type: ignore[no-any-return]


def add_links(schema: dict[str, Any], links: tuple[Link, ...] = LINKS) -> dict[str, Any]:
    """``links`` added to ``schema`` (changed in place) under their source's response, each named after
    its target (``CreateSession``) and naming it by operationId."""
    for link in links:
        source, target = _operation(schema, link.source), _operation(schema, link.target)
        response = source["responses"].get(link.status)
        if response is None:
            raise ValueError(f"OpenAPI link: {link.source} declares no {link.status} answer")
        parameters = {p["name"] for p in target.get("parameters", ()) if p["in"] in ("path", "query")}
        if set(link.parameters) - parameters:
            raise ValueError(f"OpenAPI link: {link.target} has no parameter {sorted(set(link.parameters) - parameters)}")
        definition: dict[str, Any] = {"operationId": target["operationId"],
                                      "description": f"{link.target} with values from this answer"}
        if link.parameters:
            definition["parameters"] = dict(link.parameters)
        if link.body is not None:
            if "requestBody" not in target:
                raise ValueError(f"OpenAPI link: {link.target} takes no body")
            definition["requestBody"] = dict(link.body)
        name = target.get("summary", target["operationId"]).title().replace(" ", "")
        found = response.setdefault("links", {})
        if name in found:
            raise ValueError(f"OpenAPI link: {link.source} -> {link.target} twice (as {name})")
        found[name] = definition
    return schema


def install(app: FastAPI) -> None:
    """The app's schema (``app.openapi()``, ``/openapi.json``) with ``LINKS`` in it."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()  # FastAPI keeps it in app.openapi_schema: built again if the links fail
        try:
            return add_links(schema)
        except ValueError:
            app.openapi_schema = None
            raise

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to change the schema
