"""Ids in paths: within SQLite's integers (a larger one is answered 422, never a server error)."""

from typing import Annotated

from fastapi import Path

SessionId = Annotated[int, Path(ge=1, le=2**63 - 1, description="a session's id")]
