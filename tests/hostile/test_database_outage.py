"""A PostgreSQL outage: 503 with Retry-After (never 500), readiness says so, the log stays bounded.

The database is a throw-away cluster made with ``initdb`` and run with ``pg_ctl`` on a free
loopback port (never the machine's own server, see ``tests/pgcluster.py``), stopped and started
again by the test.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailproxy_core.db.outage import (
    DRIVER_POOL_LOGGER,
    OutageLog,
    is_unavailable,
    quiet_driver_outage_tracebacks,
)
from tests.hostile.conftest import running_service
from tests.pgcluster import Cluster, throwaway_cluster

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as made:
        yield made


def test_api_answers_503_with_retry_after_while_the_database_is_away(
    cluster: Cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_service(cluster.url, tmp_path) as service:
        assert service.post("/tenants/add", {"id": "acme"}).status_code == 200
        assert service.get("/health/ready").json() == {"status": "ready"}

        cluster.stop()
        caplog.clear()
        with caplog.at_level(logging.INFO):
            answers = [service.get("/tenants/list") for _ in range(10)]
            answers.append(service.post("/tenants/add", {"id": "globex"}))
            for response in answers:
                assert response.status_code == 503, response.text
                assert response.headers["Retry-After"] == "5"
                assert response.json()["code"] == "database_unavailable"
            # liveness stays DB-free, readiness checks the database
            assert service.get("/health").status_code == 200
            ready = service.get("/health/ready")
            assert ready.status_code == 503 and ready.headers["Retry-After"] == "5"

            api_lines = [r for r in caplog.records if r.name == "mailproxy_core.api.errors"]
            # one WARNING for the whole outage (reminders come at most once a minute)
            assert [r.levelname for r in api_lines] == ["WARNING"], [
                r.getMessage() for r in api_lines
            ]
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR and
                        r.name.startswith("mailproxy_core.api")]  # fmt: skip

            cluster.start()
            assert service.get("/health/ready").json() == {"status": "ready"}
            assert service.get("/tenants/list").status_code == 200
            back = [r for r in caplog.records if r.name == "mailproxy_core.api.errors"]
            assert [r.levelname for r in back] == ["WARNING", "INFO"]
            assert "available again" in back[-1].getMessage()


LOOPS = ("mailproxy_core.dispatch.dispatcher", "mailproxy_core.dispatch.reporting")


def test_background_loops_log_an_outage_once_not_per_round(
    cluster: Cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_service(cluster.url, tmp_path, test_mode=False) as service:
        assert service.post("/tenants/add", {"id": "acme"}).status_code == 200
        with caplog.at_level(logging.INFO):
            cluster.stop()
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:  # the loops retry many times meanwhile
                service.post("/instance/run_now", {})
                time.sleep(0.2)
            cluster.start()
            for _ in range(100):
                if service.get("/health/ready").status_code == 200:
                    break
                time.sleep(0.1)
            time.sleep(2.0)  # a dispatcher round after the restart
        lines = [r for r in caplog.records if r.name in LOOPS]
        assert not [r for r in lines if r.levelno >= logging.ERROR], [r.getMessage() for r in lines]
        for name in LOOPS:
            warnings = [r for r in lines if r.name == name and r.levelno == logging.WARNING]
            assert len(warnings) <= 1, [r.getMessage() for r in warnings]
        dispatcher = [r for r in lines if r.name == LOOPS[0]]
        assert [r.levelname for r in dispatcher] == ["WARNING", "INFO"], [
            r.getMessage() for r in dispatcher
        ]
        assert service.get("/tenants/list").status_code == 200


def test_outage_log_is_one_warning_a_reminder_per_minute_and_one_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    log = OutageLog(logging.getLogger("outage-test"), clock=lambda: now[0])
    error = ConnectionRefusedError(111, "refused")
    with caplog.at_level(logging.INFO, logger="outage-test"):
        for _ in range(300):  # 300 failures in 150 s: a WARNING, then one reminder per minute
            log.failed(error)
            now[0] += 0.5
        log.succeeded()
        log.succeeded()  # nothing more: the outage is over
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == ["WARNING", "WARNING", "WARNING", "INFO"]
    assert lines[0][1].startswith("database unavailable (ConnectionRefusedError)")
    assert "still unavailable after 60 s (120 failed calls" in lines[1][1]
    assert lines[3][1] == "database available again after 150 s"


def test_outage_errors_are_told_from_bugs() -> None:
    assert is_unavailable(ConnectionRefusedError(111, "refused"))
    wrapped = RuntimeError("query failed")
    wrapped.__cause__ = ConnectionResetError()
    assert is_unavailable(wrapped)
    assert not is_unavailable(ValueError("a bug"))
    assert not is_unavailable(KeyError("x"))


def test_driver_pool_outage_warnings_keep_one_line_without_traceback() -> None:
    quiet_driver_outage_tracebacks()
    quiet_driver_outage_tracebacks()  # installed once
    pool = logging.getLogger(DRIVER_POOL_LOGGER)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    pool.addHandler(handler)
    try:
        for error in (ConnectionRefusedError(111, "Connect call failed"), ValueError("a bug")):
            try:
                raise error
            except Exception:
                pool.warning("Failed to restore the pool connection floor; retrying", exc_info=True)
    finally:
        pool.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0] == (
        "WARNING asyncpg.pool: Failed to restore the pool connection floor; retrying "
        "(ConnectionRefusedError: database unavailable)"
    )
    assert lines[1:3] == [  # a bug keeps its traceback
        "WARNING asyncpg.pool: Failed to restore the pool connection floor; retrying",
        "Traceback (most recent call last):",
    ]
    assert lines.count("Traceback (most recent call last):") == 1
