"""User admin routes beyond creating and unlocking (``api.py``): list, deactivate, reset a PIN.
Admins only, every change audited (``Accounts``). Routes are added to the app by ``install``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from devicectl.core.auth import User

if TYPE_CHECKING:
    from fastapi import FastAPI

    from devicectl.core.service import Service


class ResetPinBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: str = Field(max_length=32, description="a one-time PIN: the user chooses their own at the next login")


def install(app: FastAPI, service: Service) -> None:
    from fastapi import Depends

    from devicectl.web.api import current_user

    login = Depends(current_user)

    @app.get("/api/users")
    async def list_users(user: User = login) -> list[dict[str, Any]]:
        """Every user: name, role, active, locked, one-time PIN pending."""
        service.accounts.require(user, "admin", action="user.list")
        return await service.accounts.list_users(user)

    @app.post("/api/users/{name}/deactivate")
    async def deactivate_user(name: str, user: User = login) -> dict[str, Any]:
        """The user can no longer log in; their logins end (records keep their name)."""
        service.accounts.require(user, "admin", action="user.deactivate")
        await service.accounts.deactivate(user, name)
        return {"ok": True}

    @app.post("/api/users/{name}/pin")
    async def reset_user_pin(name: str, body: ResetPinBody, user: User = login) -> dict[str, Any]:
        """Set a one-time PIN (the user must change it at the next login); unlocks the user."""
        service.accounts.require(user, "admin", action="user.reset_pin")
        await service.accounts.reset_pin(user, name, body.pin)
        return {"ok": True}
