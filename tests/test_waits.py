"""The waits never lose a cancel that arrives with their result (asyncio.wait_for on
Python 3.11 does: the loop that waited goes on after it was told to stop)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from qfarm.waits import get_within, wait_set


async def _ended_by_one_cancel(
    step: Callable[[], Awaitable[object]], arrive: Callable[[], None]
) -> bool:
    """Whether a service loop of ``step`` ends when it is canceled in the same loop turn as
    ``arrive`` gives it what it waits for. The loop is left canceled either way."""

    async def service() -> None:
        while True:  # only a cancel ends it
            await step()

    task = asyncio.create_task(service())
    await asyncio.sleep(0)  # the loop now waits in its step

    def arrive_and_cancel() -> None:
        arrive()
        task.cancel()

    asyncio.get_running_loop().call_soon(arrive_and_cancel)
    done, _ = await asyncio.wait({task}, timeout=5)  # does not cancel the task itself
    ended = task in done and task.cancelled()
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1)
    return ended


def test_a_cancel_that_comes_with_the_event_ends_the_loop() -> None:
    async def main() -> bool:
        wake = asyncio.Event()

        async def step() -> None:
            await wait_set(wake, 30)
            wake.clear()

        return await _ended_by_one_cancel(step, wake.set)

    assert asyncio.run(main())


def test_a_cancel_that_comes_with_an_item_ends_the_loop_and_leaves_the_item() -> None:
    async def main() -> tuple[bool, list[int], int]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        taken: list[int] = []

        async def step() -> None:
            taken.append(await get_within(queue, 30))

        ended = await _ended_by_one_cancel(step, lambda: queue.put_nowait(7))
        return ended, taken, queue.get_nowait()

    assert asyncio.run(main()) == (True, [], 7)


def test_they_time_out_and_answer_in_time() -> None:
    async def main() -> None:
        event = asyncio.Event()
        assert await wait_set(event, 0.01) is False
        event.set()
        assert await wait_set(event, 0.01) is True
        queue: asyncio.Queue[str] = asyncio.Queue()
        try:
            await get_within(queue, 0.01)
        except TimeoutError:
            pass
        else:
            raise AssertionError("no TimeoutError from an empty queue")
        queue.put_nowait("x")
        assert await get_within(queue, 0.01) == "x"

    asyncio.run(main())
