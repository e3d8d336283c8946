"""cancel_and_wait: what a stopping service relies on."""

from __future__ import annotations

import asyncio

import pytest

from bot.background import cancel_and_wait


async def test_tasks_end_and_their_errors_stay_theirs() -> None:
    async def raises_on_cancel() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            raise RuntimeError("cleanup failed")

    loud, quiet = asyncio.create_task(raises_on_cancel()), asyncio.create_task(asyncio.sleep(60))
    await asyncio.sleep(0)
    await cancel_and_wait(loud, None, quiet)
    assert loud.done() and quiet.cancelled()


async def test_the_calling_task_is_not_waited_on() -> None:
    async def stop_all(tasks: list[asyncio.Task]) -> None:
        await cancel_and_wait(*tasks)

    other = asyncio.create_task(asyncio.sleep(60))
    tasks = [other]
    me = asyncio.create_task(stop_all(tasks))
    tasks.append(me)  # a service's own list can hold the task that is stopping it
    await asyncio.wait_for(me, 2)
    assert other.cancelled()


async def test_the_callers_own_cancellation_still_propagates() -> None:
    slow_exit = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await slow_exit.wait()

    task = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(task))
    await asyncio.sleep(0.05)
    stopper.cancel()
    slow_exit.set()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert task.done()
