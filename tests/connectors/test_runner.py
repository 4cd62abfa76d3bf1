"""The connector runner with small hand-written fake connectors (no network: the framework's own
behaviour; the real-socket tests are in test_cura.py, test_sbsys.py, ...)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest

from connectors.http import RetryPolicy
from connectors.metrics import ConnectorMetrics
from connectors.runner import CircuitBreaker, ConnectorRunner
from connectors.status import StatusStore
from hub.domain import events as ev
from hub.ingest.connector import (
    AuthenticationFailed,
    Batch,
    Connector,
    SourceUnavailable,
    Stream,
)
from hub.store.contract import DeadLetter

FAST = RetryPolicy(attempts=3, initial=0.001, maximum=0.002, jitter=0.0)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def opened(system: str, i: int) -> ev.CanonicalEvent:
    return ev.CanonicalEvent(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{system}/{i}"), source_system=system,
        source_record_id=f"case-{i}/opened", source_version="1",
        occurred_at=T0 + timedelta(days=i), case_key=f"{system}:{i}",
        payload=ev.CaseOpened("VOKSEN", "U1", "Unit", "standard", "open"))


class ListStream(Stream):
    """Records 0..n-1 in batches of ``size``; the cursor is the next index."""

    def __init__(self, system: str, n: int, size: int, fail: list | None = None):
        self.name = "cases"
        self.system, self.n, self.size = system, n, size
        self.fail = fail if fail is not None else []
        self.reads: list[str | None] = []

    def read(self, cursor: str | None) -> Iterator[Batch]:
        self.reads.append(cursor)
        start = int(cursor or 0)
        for i in range(start, self.n, self.size):
            if self.fail:
                raise self.fail.pop(0)
            end = min(i + self.size, self.n)
            yield Batch([opened(self.system, k) for k in range(i, end)], cursor=str(end))


class FakeConnector(Connector):
    def __init__(self, name: str, stream: Stream):
        self.name = name
        self.stream = stream

    def check(self) -> None:
        pass

    def streams(self) -> list[Stream]:
        return [self.stream]


def test_each_batch_is_committed_with_its_cursor(store):
    stream = ListStream("cura", 10, 3)
    report = ConnectorRunner(store, [FakeConnector("cura", stream)], retry=FAST).run_once()
    assert report.ok and report.stored == 10 and report.connectors["cura"].batches == 4
    assert store.cursors("cura") == {"cases": "10"}
    # Next pass starts at the stored cursor and finds nothing new.
    again = ConnectorRunner(store, [FakeConnector("cura", stream)], retry=FAST).run_once()
    assert again.stored == 0 and stream.reads[-1] == "10"


def test_source_unavailable_is_retried_from_the_stored_cursor(store):
    stream = ListStream("cura", 9, 3, fail=[])
    # Fail once after the first batch was committed: the retry resumes at cursor 3.

    class FailSecond(ListStream):
        def read(self, cursor):
            for i, b in enumerate(super().read(cursor)):
                if i == 1 and not self.failed:
                    self.failed = True
                    raise SourceUnavailable("connection reset")
                yield b

    stream = FailSecond("cura", 9, 3)
    stream.failed = False
    report = ConnectorRunner(store, [FakeConnector("cura", stream)], retry=FAST).run_once()
    assert report.ok and report.stored == 9 and report.duplicates == 0
    assert stream.reads == [None, "3"]


def test_authentication_failure_is_not_retried(store):
    stream = ListStream("cura", 3, 3, fail=[AuthenticationFailed("bad password")])
    report = ConnectorRunner(store, [FakeConnector("cura", stream)], retry=FAST).run_once()
    assert report.connectors["cura"].error.startswith("authentication")
    assert stream.reads == [None]


def test_one_system_down_does_not_stop_the_others(store):
    down = ListStream("sbsys", 5, 5, fail=[SourceUnavailable("refused")] * 10)
    up = ListStream("cura", 5, 5)
    runner = ConnectorRunner(store, [FakeConnector("sbsys", down), FakeConnector("cura", up)],
                             retry=FAST)
    report = runner.run_once()
    assert report.connectors["sbsys"].error and report.connectors["cura"].ok
    assert report.stored == 5
    # The system comes back; the next pass catches up.
    down.fail.clear()
    assert runner.run_once().connectors["sbsys"].stored == 5


def test_breaker_opens_and_half_opens():
    now = [0.0]
    b = CircuitBreaker(threshold=2, cooldown=10, clock=lambda: now[0])
    b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open" and not b.allow()
    now[0] = 10.0
    assert b.state == "half_open" and b.allow()
    b.failure()  # a failure while half-open opens again at once
    assert b.state == "open"
    now[0] = 20.0
    b.success()
    assert b.state == "closed" and b.failures == 0


def test_open_breaker_skips_the_system_without_contacting_it(store):
    now = [0.0]
    stream = ListStream("sbsys", 3, 3, fail=[SourceUnavailable("down")] * 100)
    runner = ConnectorRunner(store, [FakeConnector("sbsys", stream)], retry=RetryPolicy(1),
                             breaker_threshold=2, breaker_cooldown=30, clock=lambda: now[0])
    runner.run_once()
    runner.run_once()
    reads = len(stream.reads)
    skipped = runner.run_once().connectors["sbsys"]
    assert skipped.skipped and len(stream.reads) == reads
    now[0] = 31.0
    stream.fail.clear()
    assert runner.run_once().connectors["sbsys"].stored == 3


def test_dead_letters_are_committed_with_the_batch(store):
    class Bad(Stream):
        name = "cases"

        def read(self, cursor):
            yield Batch([opened("cura", 1)],
                        [DeadLetter("cura", "missing subject", b'{"id": "x"}', "x")], cursor="1")

    report = ConnectorRunner(store, [FakeConnector("cura", Bad())], retry=FAST).run_once()
    assert report.connectors["cura"].dead_letters == 1
    assert [d.reason for d in store.dead_letters(source_system="cura")] == ["missing subject"]


def test_status_is_persisted_for_another_process_and_metrics_follow(store, sqlite_url):
    status = StatusStore(sqlite_url)
    metrics = ConnectorMetrics()
    down = ListStream("sbsys", 2, 2, fail=[SourceUnavailable("refused")] * 10)
    runner = ConnectorRunner(store, [FakeConnector("cura", ListStream("cura", 4, 2)),
                                     FakeConnector("sbsys", down)],
                             status=status, metrics=metrics, retry=FAST,
                             now=lambda: T0 + timedelta(days=30))
    runner.run_once()
    other = {s.connector: s for s in StatusStore(sqlite_url).all()}  # as `glasplade status`
    cura, sbsys = other["cura"], other["sbsys"]
    assert cura.events_stored == 4 and cura.last_success_at and cura.consecutive_failures == 0
    assert cura.newest_occurred_at == T0 + timedelta(days=3)
    assert cura.lag_seconds(T0 + timedelta(days=4)) == 86400
    assert sbsys.consecutive_failures == 1 and "refused" in sbsys.last_error
    assert not sbsys.healthy()
    text = generate_latest(metrics.registry).decode()
    assert 'glasplade_connector_events_stored_total{connector="cura"} 4.0' in text
    assert 'glasplade_connector_consecutive_failures{connector="sbsys"} 1.0' in text
    runner.run_once()
    assert StatusStore(sqlite_url).get("sbsys").consecutive_failures == 2
    assert StatusStore(sqlite_url).get("cura").events_stored == 4


def test_a_bug_in_a_connector_is_contained(store):
    class Buggy(Stream):
        name = "cases"

        def read(self, cursor):
            raise KeyError("Results")
            yield  # pragma: no cover

    report = ConnectorRunner(store, [FakeConnector("dubu", Buggy()),
                                     FakeConnector("cura", ListStream("cura", 2, 2))],
                             retry=FAST).run_once()
    assert report.connectors["dubu"].error.startswith("error") and report.stored == 2


@pytest.mark.parametrize("spec,expected", [("latency=0.5,error_rate=0.1", (0.5, 0.1, False)),
                                           ("down=true", (0.0, 0.0, True))])
def test_fault_config_parses(spec, expected):
    from connectors.simulation import FaultConfig
    c = FaultConfig.parse(spec)
    assert (c.latency, c.error_rate, c.down) == expected
    with pytest.raises(ValueError, match="unknown fault"):
        FaultConfig.parse("nonsense=1")


def test_status_database_down_does_not_stop_ingest(store, tmp_path):
    status = StatusStore(f"sqlite:///{tmp_path / 'status.db'}")
    status.engine.dispose()
    (tmp_path / "status.db").unlink()
    (tmp_path / "status.db").mkdir()  # the status database can no longer be opened
    report = ConnectorRunner(store, [FakeConnector("cura", ListStream("cura", 3, 3))],
                             status=status, retry=FAST).run_once()
    assert report.ok and report.stored == 3


def test_a_status_table_of_an_earlier_version_gets_the_new_columns(tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'status.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the table as the first release made it (no backlog)
        conn.exec_driver_sql(
            "CREATE TABLE glasplade_connector_status (connector VARCHAR(64) PRIMARY KEY, breaker"
            " VARCHAR(16) NOT NULL, last_run_at DATETIME, last_success_at DATETIME,"
            " last_error_at DATETIME, last_error TEXT, consecutive_failures INTEGER NOT NULL,"
            " newest_occurred_at DATETIME, cursor_advanced_at DATETIME, events_stored BIGINT"
            " NOT NULL, duplicates BIGINT NOT NULL, dead_letters BIGINT NOT NULL)")
        conn.exec_driver_sql("INSERT INTO glasplade_connector_status VALUES ('cura', 'closed',"
                             " NULL, NULL, NULL, NULL, 0, NULL, NULL, 7, 0, 0)")
    engine.dispose()
    status = StatusStore(url)
    assert status.get("cura").events_stored == 7 and status.get("cura").backlog is None
    status.save(status.get("cura").updated(backlog=3))
    assert StatusStore(url).get("cura").backlog == 3
