"""SQLite write turns are fair across lanes: a burst of API writes cannot starve the dispatcher.

``WriteTurns`` grants the turn round-robin across the lanes that have writers waiting (a lane of
weight *w* up to *w* turns in a row), first come, first served within a lane. These tests check
the order of grants, not timings.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa

from mailproxy_core.db._sqlite import WriteTurns
from mailproxy_core.db.engine import Database, current_write_lane, set_write_lane

scratch = sa.Table(
    "scratch",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("writer", sa.Text, nullable=False),
)


async def _queue(turns: WriteTurns, order: list[str], name: str, lane: str) -> None:
    await turns.acquire(lane)
    order.append(name)


async def _until_waiting(db: Database, count: int) -> None:
    """Until ``count`` writers of ``db`` queue for the write turn (on a busy machine a writer
    may take many loop turns to get there: a fixed number of yields is not enough)."""
    turns = db._db._backend._idle_pool._write_turns  # white-box: the test is about the turns
    for _ in range(2000):
        if turns.waiting() >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{turns.waiting()} writers queued, expected {count}")


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_turns_alternate_between_lanes_and_are_fifo_within_one() -> None:
    turns = WriteTurns()
    await turns.acquire("default")  # someone writes; everyone below queues behind it
    order: list[str] = []
    names = [("api1", "default"), ("api2", "default"), ("api3", "default"), ("api4", "default")]
    names += [("disp1", "dispatch"), ("disp2", "dispatch"), ("rep1", "reporting")]
    tasks = []
    for name, lane in names:
        tasks.append(asyncio.create_task(_queue(turns, order, name, lane)))
        await _settle()  # arrival order is the list order
    assert turns.waiting() == 7
    for _ in names:
        turns.release()
        await _settle()
    await asyncio.gather(*tasks)
    # Plain first-come-first-served would give api1..api4 before disp1.
    assert order == ["api1", "disp1", "rep1", "api2", "disp2", "api3", "api4"]
    turns.release()
    assert not turns.held and turns.waiting() == 0


async def test_a_weighted_lane_takes_its_row_of_turns_and_its_returning_writer_goes_first() -> None:
    turns = WriteTurns({"dispatch": 3}, hold_back=60.0)  # the hold-back never expires here
    await turns.acquire("default")
    order: list[str] = []
    tasks = []
    for name, lane in [("api1", "default"), ("api2", "default"), ("disp1", "dispatch")]:
        tasks.append(asyncio.create_task(_queue(turns, order, name, lane)))
        await _settle()
    turns.release()  # -> api1 (the default lane is first in the rotation)
    await _settle()
    turns.release()  # -> disp1, first turn of its row
    await _settle()
    assert order == ["api1", "disp1"]
    turns.release()  # no dispatch writer waits: the turn is held back for the dispatcher
    await _settle()
    assert order == ["api1", "disp1"] and turns.held
    await turns.acquire("dispatch")  # it comes back: second turn of its row, at once
    turns.release()
    await turns.acquire("dispatch")  # third
    turns.release()  # its row is over: api2 now, without waiting for the hold-back
    await _settle()
    await asyncio.gather(*tasks)
    assert order == ["api1", "disp1", "api2"]
    turns.release()
    assert not turns.held and turns.waiting() == 0


async def test_a_held_back_turn_passes_on_when_the_lane_does_not_come_back() -> None:
    turns = WriteTurns({"dispatch": 3}, hold_back=0.01)
    await turns.acquire("dispatch")
    api = asyncio.create_task(turns.acquire("default"))
    await _settle()
    turns.release()  # held back for the dispatcher, which never returns
    await asyncio.wait_for(api, 5)
    turns.release()
    assert not turns.held


async def test_without_anyone_else_waiting_nothing_is_held_back() -> None:
    turns = WriteTurns({"dispatch": 3}, hold_back=60.0)
    await turns.acquire("dispatch")
    turns.release()
    assert not turns.held
    await asyncio.wait_for(turns.acquire("default"), 1)


async def test_a_cancelled_waiter_leaves_its_lane_and_a_cancelled_grant_passes_it_on() -> None:
    turns = WriteTurns()
    await turns.acquire("default")
    order: list[str] = []
    gone = asyncio.create_task(_queue(turns, order, "gone", "dispatch"))
    await _settle()
    late = asyncio.create_task(_queue(turns, order, "late", "default"))
    await _settle()
    gone.cancel()
    await _settle()
    assert gone.cancelled() and turns.waiting() == 1
    granted_then_cancelled = asyncio.create_task(_queue(turns, order, "never", "reporting"))
    await _settle()
    turns.release()  # to "late" (the default lane is first in the rotation)
    await _settle()
    turns.release()  # to "never", cancelled before it runs: the turn must come back free
    granted_then_cancelled.cancel()
    await _settle()
    await late
    assert order == ["late"]
    assert granted_then_cancelled.cancelled()
    assert not turns.held and turns.waiting() == 0
    await asyncio.wait_for(turns.acquire("default"), 1)  # free: no one is stuck holding it


async def test_a_database_writer_in_its_own_lane_waits_for_at_most_one_turn_per_busy_lane(
    tmp_path: Path,
) -> None:
    db = Database.from_setting(str(tmp_path / "q.db"))
    async with db:
        await db.execute(sa.schema.CreateTable(scratch))
        order: list[str] = []
        gate = asyncio.Event()

        async def write(name: str, lane: str | None) -> None:
            if lane is not None:
                set_write_lane(lane)
            async with db.transaction():
                order.append(name)
                await db.execute(scratch.insert().values(writer=name))
                if name == "holder":
                    await gate.wait()

        holder = asyncio.create_task(write("holder", None))
        while not order:  # noqa: ASYNC110 - waits for the holder to start its transaction
            await asyncio.sleep(0)
        api = [asyncio.create_task(write(f"api{n}", None)) for n in range(20)]
        await _until_waiting(db, 20)  # every API writer queued before the dispatcher arrives
        dispatcher = asyncio.create_task(write("dispatcher", "dispatch"))
        await _until_waiting(db, 21)
        gate.set()
        await asyncio.gather(holder, dispatcher, *api)
        # Twenty API writers queued first; the dispatcher still writes right after the first.
        assert order.index("dispatcher") == 2, order
        rows = await db.fetch_all(sa.select(scratch.c.writer))
        assert len(rows) == 22
    assert current_write_lane() == "default"  # lanes are per task, the test's own is untouched
