"""Stopping the asyncio tasks a service runs in the background."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel each task and wait until it has ended. What a task raised on its way out is not the
    caller's to handle (it is stopping it); the caller's own cancellation still propagates, so cleanup
    that must run after this belongs in a `finally`. The calling task itself is never waited on."""
    running = [task for task in tasks if task is not None and task is not asyncio.current_task()]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
