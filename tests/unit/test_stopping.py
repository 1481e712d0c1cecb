"""`stop_task` ends a task even when one cancellation is swallowed (Python 3.11's wait_for)."""

from __future__ import annotations

import asyncio

import pytest

from perpx.stopping import stop_task


def test_a_task_that_swallows_a_cancellation_is_cancelled_again() -> None:
    turns: list[int] = []

    async def stubborn() -> None:
        # What a loop over 3.11's `wait_for` does when a cancel lands as its awaitable
        # finishes: the CancelledError never reaches it, and it goes on looping.
        swallowed = False
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed = True
            turns.append(1)

    async def scenario() -> bool:
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0.05)
        await asyncio.wait_for(stop_task(task), 5)
        return task.cancelled()

    assert asyncio.run(scenario())
    assert turns  # it did run on after the first cancel


def test_stop_task_raises_what_the_task_raised() -> None:
    async def failing() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("closing failed") from None

    async def scenario() -> None:
        task = asyncio.create_task(failing())
        await asyncio.sleep(0)
        await stop_task(task)

    with pytest.raises(RuntimeError, match="closing failed"):
        asyncio.run(scenario())


def test_a_finished_task_is_left_as_it_is() -> None:
    async def scenario() -> int:
        task = asyncio.create_task(asyncio.sleep(0, result=7))
        await task
        await stop_task(task)
        return task.result()

    assert asyncio.run(scenario()) == 7


def test_a_cancellation_of_the_caller_while_it_waits_is_absorbed_as_before() -> None:
    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # unwinds for a moment
            raise

    async def closing(task: asyncio.Task[None]) -> str:
        await stop_task(task)
        return "closed"

    async def scenario() -> tuple[str, bool]:
        task = asyncio.create_task(slow_to_stop())
        await asyncio.sleep(0)
        closer = asyncio.create_task(closing(task))
        await asyncio.sleep(0.01)
        closer.cancel()  # as a re-raised SIGINT cancels the main task in its clean-up
        return await closer, task.done()

    assert asyncio.run(scenario()) == ("closed", True)
