"""The fault suite runs with ``make test-faults`` (``MAILPROXY_FAULTS=1``), not in ``make test``.

It starts real mail-proxy processes and injects real faults (SIGKILL, peers going away, a
PostgreSQL cluster stopped under load); it takes minutes, so the default test run skips it,
saying how to run it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import ClientApp, Sink

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Test infrastructure, not the service: reads the environment directly.
    if os.environ.get("MAILPROXY_FAULTS") == "1":
        return
    skip = pytest.mark.skip(reason="fault suite: run it with make test-faults (MAILPROXY_FAULTS=1)")
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(skip)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """An SMTP server that holds each DATA for 50 ms, so sends overlap and are in flight."""
    running = await Sink(data_delay=0.05).up()
    yield running
    await running.down()


@pytest.fixture
def client_app() -> Iterator[ClientApp]:
    """The tenant's client application, up."""
    app = ClientApp().up()
    yield app
    app.down()
