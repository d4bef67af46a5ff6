"""``start_now`` (devicectl/core/eager.py): a task whose first step runs before the call returns,
as the STOP decided in a callback needs (H26); everything after behaves as any task."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from devicectl.core.eager import start_now

WHO = contextvars.ContextVar("WHO", default="caller")


async def test_the_first_step_runs_before_the_call_returns_and_the_rest_in_a_task() -> None:
    steps: list[str] = []
    later: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def work() -> str:
        steps.append("first")
        value = await later
        steps.append("second")
        return value + "!"

    task = start_now(work())
    assert steps == ["first"] and not task.done()
    coro: Any = task.get_coro()  # type: ignore[attr-defined]
    assert "work" in coro.__qualname__ and coro.cr_frame.f_code.co_name == "work"  # named as the coroutine it runs
    later.set_result("done")
    assert await task == "done!" and steps == ["first", "second"]


async def test_a_coroutine_that_never_waits_is_done_at_once() -> None:
    async def quick() -> int:
        return 7

    async def broken() -> None:
        raise LookupError("in the first step")

    done = start_now(quick())
    assert done.done() and await done == 7
    failed = start_now(broken())  # the task's exception, not the caller's
    assert failed.done()
    with pytest.raises(LookupError, match="in the first step"):
        await failed


async def test_an_error_after_the_first_step_is_the_tasks() -> None:
    async def work() -> None:
        await asyncio.sleep(0)
        raise ValueError("in the second step")

    task = start_now(work())
    with pytest.raises(ValueError, match="in the second step"):
        await task


@pytest.mark.parametrize("when", ["before the task ran", "while it waits"])
async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits_and_its_cleanup_runs(when: str) -> None:
    cleaned: list[str] = []
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def work() -> None:
        try:
            await never
        finally:
            cleaned.append("released")

    task = start_now(work())
    if when == "while it waits":
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled() and cleaned == ["released"]


async def test_the_coroutines_context_is_its_own() -> None:
    seen: list[str] = []

    async def work() -> None:
        WHO.set("task")
        await asyncio.sleep(0)
        seen.append(WHO.get())

    await start_now(work())
    assert seen == ["task"] and WHO.get() == "caller"
