"""``Pacer``: long work on the loop lets other tasks and database threads through between slices.

Counted, not timed: each test measures how much of the long work ran (in slices) while another
task finished something small. Stepping aside with a bare ``asyncio.sleep(0)`` gave the others one
turn of the loop per slice, and a thread waited for the interpreter's switch interval at every
take of the GIL: these tests counted 31 and 42 slices then.
"""

from __future__ import annotations

import asyncio
import time

from mailproxy_core.pacing import Pacer

SLICE = 0.01
STEP = 0.0005
"""Work between two calls of ``pause``: a slice is about twenty steps."""


def _spin(seconds: float) -> None:
    """Python work that holds the GIL (as validation or encoding does)."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


class LongWork:
    """A task that works in steps under a ``Pacer`` and counts the steps it did."""

    def __init__(self) -> None:
        self.steps = 0
        self.stop = asyncio.Event()
        self.started = asyncio.Event()

    async def run(self) -> None:
        pacer = Pacer(SLICE)
        while not self.stop.is_set():
            _spin(STEP)
            self.steps += 1
            self.started.set()
            await pacer.pause()

    async def slices_during(self, other: asyncio.Future[object]) -> float:
        """Slices of work done while ``other`` ran."""
        await self.started.wait()
        before = self.steps
        await other
        return (self.steps - before) * STEP / SLICE


async def test_a_task_needing_many_turns_waits_for_about_one_slice():
    work = LongWork()
    worker = asyncio.create_task(work.run())

    async def thirty_turns() -> None:  # about what one API request needs, read to written
        for _ in range(30):
            await asyncio.sleep(0)

    try:
        slices = await work.slices_during(asyncio.ensure_future(thirty_turns()))
    finally:
        work.stop.set()
        await worker
    assert slices <= 3, f"{slices:.1f} slices of long work before 30 turns of another task"


async def test_a_thread_round_trip_waits_for_a_few_slices_at_most():
    work = LongWork()
    worker = asyncio.create_task(work.run())

    def statement() -> None:  # a database call takes and leaves the GIL a number of times
        for _ in range(40):
            time.sleep(0)

    try:
        slices = await work.slices_during(asyncio.ensure_future(asyncio.to_thread(statement)))
    finally:
        work.stop.set()
        await worker
    assert slices <= 5, f"{slices:.1f} slices of long work before a thread's 40 GIL hand-offs"


async def test_short_work_never_steps_aside():
    pacer = Pacer(60.0)
    loop_time = asyncio.get_running_loop().time
    started = loop_time()
    for _ in range(1000):
        await pacer.pause()
    assert loop_time() - started < 1.0  # 1,000 pauses that stepped aside would take over 1 s
