"""``run_every``: a periodic background task that never ends on an error."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mailproxy_core import run_every

LOG = logging.getLogger("run-every-test")


class Refused(ConnectionRefusedError):
    """What a driver raises when the database does not accept connections."""


async def test_errors_are_logged_and_the_next_round_runs(caplog: pytest.LogCaptureFixture):
    rounds: list[str] = []
    all_done = asyncio.Event()
    script = [ValueError("a bug"), Refused("down"), Refused("down"), None, None]

    async def work() -> None:
        outcome = script[len(rounds)] if len(rounds) < len(script) else None
        rounds.append(type(outcome).__name__)
        if len(rounds) == len(script):
            all_done.set()
        if outcome is not None:
            raise outcome

    caplog.set_level(logging.INFO, logger=LOG.name)
    task = asyncio.create_task(
        run_every(0.001, work, log=LOG, failed="the test round failed", effect="tests wait")
    )
    await asyncio.wait_for(all_done.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOG.name]
    errors = [text for level, text in lines if level == "ERROR"]
    warnings = [text for level, text in lines if level == "WARNING"]
    infos = [text for level, text in lines if level == "INFO"]
    assert len(errors) == 1 and errors[0].startswith("the test round failed")
    assert [r.exc_info is not None for r in caplog.records if r.levelname == "ERROR"] == [True]
    assert len(warnings) == 1 and "tests wait" in warnings[0]  # two failed rounds, one line
    assert len(infos) == 1  # back
