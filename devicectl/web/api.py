"""The HTTP API (REST + a WebSocket live stream) the touchscreen and technicians' tools use.

Validation errors are clear 4xx answers, never 5xx. Every route but login needs a token
(``Authorization: Bearer ...``); STOP is accepted for any logged-in role.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Request, WebSocket, WebSocketDisconnect
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, model_validator

from devicectl.calibration.records import CalibrationError
from devicectl.core.auth import AuthError, User
from devicectl.core.history import install as install_history
from devicectl.core.ids import SessionId
from devicectl.core.loops import on_loop, post
from devicectl.core.patients import install as install_patients
from devicectl.core.service import Service
from devicectl.core.sessions import SessionError
from devicectl.web.access import install as access_rule
from devicectl.web.kiosk import KioskStopGate
from devicectl.web.openapi_links import install as install_links
from devicectl.web.technician_api import register as register_technician_routes
from devicectl.web.users_api import install as install_users
from safety.plans import Indication, Ink


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def user_name_alias(data: Any) -> Any:
    """The user's name is ``name`` everywhere (canonical); ``user`` is accepted as well for one release
    (``/api/login`` used to take ``user``). Both at once must agree."""
    if isinstance(data, dict) and "user" in data:
        data = dict(data)
        alias = data.pop("user")
        if data.setdefault("name", alias) != alias:
            raise ValueError("name and user differ: send name only")
    return data


class LoginBody(Body):
    name: str = Field(min_length=1, max_length=64, description="the user's name (``user`` accepted for one release)")
    pin: str = Field(min_length=1, max_length=32)

    @model_validator(mode="before")
    @classmethod
    def either_name(cls, data: Any) -> Any:
        return user_name_alias(data)


class PinBody(Body):
    old_pin: str = Field(max_length=32)
    new_pin: str = Field(max_length=32)


class UserBody(Body):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="the user's name (``user`` accepted for one release)")
    role: Literal["practitioner", "technician", "admin"]
    pin: str = Field(max_length=32)

    @model_validator(mode="before")
    @classmethod
    def either_name(cls, data: Any) -> Any:
        return user_name_alias(data)


class SessionBody(Body):
    patient_id: str = Field(max_length=32)
    device: str = Field(max_length=32)
    indication: Indication
    skin_type: int = Field(ge=1, le=6)
    sensitive_skin: bool = False
    area_cm2: float = Field(gt=0, le=1000)
    site: str = Field(min_length=1, max_length=64, description="a body-site key (GET /api/sites), or free text read best-effort")
    site_note: str | None = Field(None, max_length=200, description="free text about the site: a note only")
    inks: list[Ink] = Field(default_factory=list, max_length=11)


class EditBody(Body):
    energy_mj: int | None = Field(None, ge=1, le=10000)
    rate_hz: float | None = Field(None, gt=0, le=100)
    pulse_budget: int | None = Field(None, ge=1, le=100000)
    freeze_s: float | None = Field(None, gt=0, le=600)
    cycles: int | None = Field(None, ge=1, le=100)
    target_c: int | None = Field(None, ge=-273, le=100)


class TestSpotBody(Body):
    done_on: date
    reviewed: bool
    darkened: bool


class ChecklistBody(Body):
    identity_confirmed: bool = False
    consent_signed: bool = False
    eye_protection_all: bool = False
    no_sun_last_4_weeks: bool = False
    benign_assessed: bool = False
    test_spot: TestSpotBody | None = None


class FreezeBody(Body):
    seconds: float = Field(gt=0, le=60)


class StopBody(Body):
    device: str | None = Field(None, max_length=32)
    origin: str = Field("api", max_length=32)


async def token_of(authorization: Annotated[str | None, Header()] = None) -> str:  # async: no worker thread
    if not authorization or not authorization.startswith("Bearer "):
        raise AuthError("log in first (Authorization: Bearer TOKEN)")
    return authorization[7:]


async def current_user(request: Request, token: Annotated[str, Depends(token_of)]) -> User:
    cached = getattr(request.state, "user", None)  # the access rule's dependency read it already
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    service: Service = request.app.state.service
    user = await service.run(service.accounts.authenticate(token))  # on the service loop; hashed off it
    request.state.user = user
    return user


Auth = Annotated[User, Depends(current_user)]


def client_of(request: Request) -> str:
    """The client's address (what PIN guesses are counted by)."""
    return request.client.host if request.client else "unknown"
Token = Annotated[str, Depends(token_of)]


def service_route(service: Service) -> type[APIRoute]:
    """The route class of the API: each endpoint runs on the service loop (devicectl/core/loops.py);
    reading and validating the request and serialising the answer stay on the loop serving HTTP."""

    class ServiceRoute(APIRoute):
        def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
            if inspect.iscoroutinefunction(endpoint):
                endpoint = on_loop(lambda: service.loop, endpoint)
            super().__init__(path, endpoint, **kwargs)

    return ServiceRoute


def create_app(service: Service, manage_lifecycle: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await service.start()
        yield
        if manage_lifecycle:
            await service.stop()

    app = FastAPI(title="devicectl", version="0.1.0", lifespan=lifespan,
                  description="Treatment device control under the safety kernel.",
                  # who may call which route (devicectl/web/access.py), decided on the service loop
                  dependencies=[Depends(on_loop(lambda: service.loop, access_rule(service)))])
    app.router.route_class = service_route(service)  # every route added from here on

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError) -> JSONResponse:
        await service.store.flush()  # the refusal's audit entry is committed before the answer
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(SessionError)
    async def session_error(request: Request, exc: SessionError) -> JSONResponse:
        await service.store.flush()
        return JSONResponse({"error": str(exc), "hazard": exc.hazard}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, with a body that is not UTF-8 shown as text (FastAPI's own encoder fails on it)."""
        errors = jsonable_encoder(exc.errors(), custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")})
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(CalibrationError)
    async def validation_error(request: Request, exc: CalibrationError) -> JSONResponse:
        """The service's own validation errors only: any other exception is a server bug, answered 500."""
        return JSONResponse({"error": str(exc)}, status_code=422)

    app.state.service = service
    # ------------------------------------------------------------------ accounts
    @app.post("/api/login")
    async def login(body: LoginBody, request: Request) -> dict[str, Any]:
        token, user = await service.accounts.login(body.name, body.pin, client_of(request))
        return {"token": token, "user": user.name, "role": user.role, "must_change_pin": user.must_change}

    @app.post("/api/logout")
    async def logout(user: Auth, token: Token) -> dict[str, Any]:
        await service.accounts.logout(token, user)
        service.consoles.token_ended(token, user, "logged out")  # what this login armed is stopped
        return {"ok": True}

    @app.get("/api/me")
    async def me(user: Auth) -> dict[str, Any]:
        return {"user": user.name, "role": user.role, "must_change_pin": user.must_change}

    @app.post("/api/me/pin")
    async def change_pin(body: PinBody, user: Auth, request: Request) -> dict[str, Any]:
        await service.accounts.change_pin(user, body.old_pin, body.new_pin, client_of(request))
        return {"ok": True}

    @app.post("/api/users", status_code=201)
    async def create_user(body: UserBody, user: Auth) -> dict[str, Any]:
        service.accounts.require(user, "admin", action="user.create")
        return {"id": await service.accounts.create_user(user, body.name, body.role, body.pin)}

    @app.post("/api/users/{name}/unlock")
    async def unlock_user(name: str, user: Auth) -> dict[str, Any]:
        service.accounts.require(user, "admin", action="user.unlock")
        await service.accounts.unlock(user, name)
        return {"ok": True}

    # ------------------------------------------------------------------ devices and stop
    @app.get("/api/devices")
    async def devices(user: Auth) -> list[dict[str, Any]]:
        return service.devices()

    kiosk = KioskStopGate(service.settings.kiosk_addresses)

    @app.post("/api/stop")
    async def stop(request: Request, body: StopBody | None = None,
                   authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        """STOP: any valid token; from a kiosk address also without one (or with an expired one)."""
        body = body or StopBody()
        address = request.client.host if request.client else None
        try:
            user = await current_user(request, await token_of(authorization))
        except AuthError:
            if not kiosk.is_kiosk(address):
                raise
            assert address is not None
            if not kiosk.allow(address):
                raise AuthError("too many STOPs from this screen in a second: the devices were already told", 429)
            user = kiosk.user(address)
        return await service.sessions.stop(user, body.origin, body.device)

    @app.post("/api/devices/{device}/acknowledge")
    async def acknowledge_device(device: str, user: Auth) -> dict[str, Any]:
        """Clear a device's lock-out after its cause was dealt with (audited; never arms)."""
        return await service.sessions.acknowledge_device(user, device)

    # ------------------------------------------------------------------ sessions
    @app.post("/api/patients", status_code=201)
    async def new_patient(user: Auth) -> dict[str, Any]:
        return {"patient_id": await service.sessions.new_patient(user)}

    @app.post("/api/sessions", status_code=201)
    async def create_session(body: SessionBody, user: Auth) -> dict[str, Any]:
        request = body.model_dump(mode="json", exclude={"patient_id", "device"})
        return await service.sessions.create(user, body.patient_id, body.device, request)

    @app.get("/api/sessions/{session_id}")
    async def get_session(session_id: SessionId, user: Auth) -> dict[str, Any]:
        return await service.sessions.get(session_id)

    @app.post("/api/sessions/{session_id}/edit")
    async def edit_session(session_id: SessionId, body: EditBody, user: Auth) -> dict[str, Any]:
        return await service.sessions.edit(user, session_id, body.model_dump(exclude_none=True))

    @app.put("/api/sessions/{session_id}/checklist")
    async def checklist(session_id: SessionId, body: ChecklistBody, user: Auth) -> dict[str, Any]:
        return await service.sessions.set_checklist(user, session_id, body.model_dump(mode="json"))

    @app.post("/api/sessions/{session_id}/start")
    async def start(session_id: SessionId, user: Auth) -> dict[str, Any]:
        return await service.sessions.start(user, session_id)

    @app.post("/api/sessions/{session_id}/arm")
    async def arm(session_id: SessionId, user: Auth, token: Token) -> dict[str, Any]:
        """Arm: tied to this login (its screen closing or the login ending stops the laser)."""
        await service.consoles.arming(token, user, await service.sessions.device_of(session_id))
        return await service.sessions.arm(user, session_id)

    @app.post("/api/sessions/{session_id}/freeze")
    async def freeze(session_id: SessionId, body: FreezeBody, user: Auth, token: Token) -> dict[str, Any]:
        """A freeze runs to its programmed end; a lost console is shown on the others."""
        await service.consoles.arming(token, user, await service.sessions.device_of(session_id))
        return await service.sessions.freeze(user, session_id, body.seconds)

    @app.post("/api/sessions/{session_id}/acknowledge")
    async def acknowledge(session_id: SessionId, user: Auth) -> dict[str, Any]:
        return await service.sessions.acknowledge(user, session_id)

    @app.post("/api/sessions/{session_id}/reconfirm")
    async def reconfirm(session_id: SessionId, user: Auth) -> dict[str, Any]:
        return await service.sessions.reconfirm(user, session_id)

    @app.post("/api/sessions/{session_id}/end")
    async def end(session_id: SessionId, user: Auth) -> dict[str, Any]:
        return await service.sessions.end(user, session_id)

    # ------------------------------------------------------------------ calibration and audit
    @app.get("/api/calibrations")
    async def calibrations(user: Auth) -> list[dict[str, Any]]:
        return await asyncio.to_thread(service.calibrations)

    @app.get("/api/audit")
    async def audit(user: Auth, limit: int = 200) -> list[dict[str, Any]]:
        service.accounts.require(user, "admin", action="audit.read")
        return await service.audit.entries(max(1, min(limit, 1000)))

    @app.get("/api/audit/verify")
    async def audit_verify(user: Auth) -> dict[str, Any]:
        service.accounts.require(user, "admin", action="audit.verify")
        return (await service.audit.verify()).__dict__

    # ------------------------------------------------------------------ live stream
    @app.websocket("/ws")
    async def live(websocket: WebSocket, token: str = "") -> None:
        """The live stream, sent from the loop serving HTTP; what it asks of the service runs on the service loop."""
        try:
            user = await service.run(service.accounts.authenticate(token))
        except AuthError:
            await websocket.close(code=4401)
            return
        await websocket.accept()
        queue = service.hub.subscribe()  # filled on this loop
        await service.call(service.consoles.opened, token)

        async def send() -> None:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await websocket.send_json({"type": "hello", "user": user.name, "devices": await service.call(service.devices)})
                while True:
                    await websocket.send_json(await queue.get())

        sender = asyncio.get_running_loop().create_task(send())
        try:  # a closed screen is noticed at once (by its close frame), not at the next message
            while not sender.done():
                if (await websocket.receive())["type"] == "websocket.disconnect":
                    break
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            service.hub.unsubscribe(queue)
            post(service.loop, service.consoles.closed, token, user)  # its token's last screen: what it armed is stopped
            with contextlib.suppress(Exception):
                await websocket.close()

    @app.get("/api/options")
    async def options(user: Auth) -> dict[str, Any]:
        """What the planning screen offers: indications by device type, ink colours, devices."""
        return {
            "indications": [{"value": i.value, "modality": i.modality.value, "label": i.value.replace("_", " ")}
                            for i in Indication],
            "inks": [i.value for i in Ink],
            "devices": [{"name": s.config.name, "type": s.config.type} for s in service.supervisors.values()],
        }

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, "devices": {s.config.name: s.status.connected for s in service.supervisors.values()},
                "realtime": None if (rt := service.realtime) is None else {"priority": rt.priority, "granted": rt.granted}}

    register_technician_routes(app, service, Auth)  # faults, service mode, calibration runs
    install_history(app, service)  # Home overview, closing interrupted and cancelling planned sessions
    install_patients(app, service)  # patient history and courses, the body-site picker's lists
    install_users(app, service)  # user admin: list, deactivate, reset PIN
    install_links(app)  # the schema's OpenAPI links: which answer feeds which next call
    ui = Path(__file__).with_name("ui")
    app.mount("/", StaticFiles(directory=ui, html=True), name="ui")
    with contextlib.suppress(Exception):  # the schema built now, not on the event loop at its first request
        app.openapi()  # (an error in it is answered at /openapi.json)
    return app
