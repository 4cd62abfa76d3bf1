"""The standard connector test suite: every connector's test subclasses ``ConnectorSuite`` and
runs it against its simulator over a real socket (Airbyte's standard tests, eventsourcing's
shared recorder tests).

A subclass supplies:
- ``name``: the registry name (also the settings prefix and ``source_system``);
- ``make_simulator(municipality, faults)``: default uses the registry's simulator factory;
- ``expected_counts(municipality)``: {event type: count} a full read must store;
- optionally ``municipality`` (a fixture; the default is tests/connectors/conftest.py's) and
  ``extra_env`` (settings that make a sweep have several batches, e.g. a small page size).
The connector is built by the registry's factory from ``Settings`` with the simulator's ``env()``
and fast retry settings (``<NAME>_TIMEOUT``, ``<NAME>_RETRY_ATTEMPTS``, ``<NAME>_RETRY_INITIAL``)
set in the environment, exactly as an operator points it at a real system.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from connectors import registry
from connectors.http import RetryPolicy
from connectors.runner import ConnectorRunner
from connectors.simulation import FaultConfig, Simulator
from hub.config import Settings
from hub.ingest.connector import Batch, Connector, SourceUnavailable, Stream
from hub.store.eventstore import EventStore
from hub.synthetic.model import Municipality
from tests.conftest import make_store

FAST_RETRY = RetryPolicy(attempts=4, initial=0.01, maximum=0.05, jitter=0.01)


class Crash(BaseException):
    """Simulates the process dying between two batches (not an Exception: nothing catches it)."""


class _CrashingStream(Stream):
    def __init__(self, inner: Stream, state: dict):
        self.inner = inner
        self.name = inner.name
        self.state = state

    def read(self, cursor: str | None) -> Iterator[Batch]:
        for batch in self.inner.read(cursor):
            if self.state["batches"] >= 1:
                self.state["crashed_in"] = self.name
                raise Crash()
            self.state["batches"] += 1
            yield batch


class CrashAfterFirstBatch(Connector):
    """Wraps a connector so the process 'dies' right after its first batch was committed."""

    def __init__(self, inner: Connector):
        self.inner = inner
        self.name = inner.name
        self.state = {"batches": 0, "crashed_in": None}

    def check(self) -> None:
        self.inner.check()

    def streams(self) -> list[Stream]:
        return [_CrashingStream(s, self.state) for s in self.inner.streams()]

    def close(self) -> None:
        self.inner.close()


class ConnectorSuite:
    name: str = ""
    seed: int = 7
    client_timeout: float = 1.0
    malformed_rate: float = 0.3
    extra_env: dict[str, str] = {}

    # --- to supply ----------------------------------------------------------------------------

    def make_simulator(self, municipality: Municipality, faults: FaultConfig) -> Simulator:
        return registry.simulator_factory(self.name)(municipality, faults)

    def expected_counts(self, municipality: Municipality) -> dict[str, int]:
        raise NotImplementedError

    # --- fixtures -----------------------------------------------------------------------------

    @pytest.fixture
    def simulator(self, municipality) -> Iterator[Simulator]:
        sim = self.make_simulator(municipality, FaultConfig(seed=self.seed))
        sim.start()
        try:
            yield sim
        finally:
            sim.stop()

    @pytest.fixture
    def connect(self, simulator, monkeypatch) -> Callable[[], Connector]:
        """Build a fresh connector pointed at the simulator (as from a new process)."""
        prefix = self.name.upper()
        env = {f"{prefix}_TIMEOUT": str(self.client_timeout), f"{prefix}_RETRY_ATTEMPTS": "3",
               f"{prefix}_RETRY_INITIAL": "0.01", **simulator.env(), **self.extra_env}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        built: list[Connector] = []

        def make() -> Connector:
            c = registry.connector_factory(self.name)(Settings())
            built.append(c)
            return c

        yield make
        for c in built:
            c.close()

    @pytest.fixture
    def one_store(self, sqlite_url) -> Iterator[EventStore]:
        """For the fault tests: one backend is enough (the store is not what they test)."""
        s = make_store(sqlite_url)
        yield s
        s.close()

    def runner(self, store: EventStore, *connectors: Connector, **kw) -> ConnectorRunner:
        kw.setdefault("retry", FAST_RETRY)
        return ConnectorRunner(store, list(connectors), **kw)

    def stored_counts(self, store: EventStore) -> dict[str, int]:
        return {t: n for t, s, n in store.counts() if s == self.name}

    # --- the standard tests ---------------------------------------------------------------

    def test_check_works(self, connect):
        connect().check()

    def test_check_fails_when_server_is_down(self, simulator, connect):
        connector = connect()
        simulator.stop()
        with pytest.raises(SourceUnavailable):
            connector.check()

    def test_full_read_stores_the_expected_events(self, store, connect, municipality):
        report = self.runner(store, connect()).run_once()
        assert report.ok, report
        expected = self.expected_counts(municipality)
        assert self.stored_counts(store) == expected
        assert report.stored == sum(expected.values())
        assert store.dead_letter_counts().get(self.name, 0) == 0
        assert store.cursors(self.name), "a full read stores a cursor per stream"

    def test_resweep_of_unchanged_data_adds_nothing(self, store, connect):
        first = self.runner(store, connect()).run_once()
        assert first.ok and first.stored > 0
        before = store.max_position()
        again = self.runner(store, connect()).run_once()
        assert again.ok, again
        assert again.stored == 0
        assert store.max_position() == before

    def test_restart_mid_sweep_resumes_without_loss_or_duplicates(self, store, connect,
                                                                  municipality):
        crashing = CrashAfterFirstBatch(connect())
        with pytest.raises(Crash):
            self.runner(store, crashing).run_once()
        assert crashing.state["crashed_in"], "a sweep must have several batches for this test"
        committed = sum(self.stored_counts(store).values())
        assert 0 < committed < sum(self.expected_counts(municipality).values())
        assert store.cursors(self.name), "the first batch's cursor was committed with it"
        resumed = self.runner(store, connect()).run_once()
        assert resumed.ok, resumed
        assert self.stored_counts(store) == self.expected_counts(municipality)
        # Resumed from the cursor: what was committed before the crash is not read again.
        assert resumed.duplicates < committed

    def test_malformed_record_is_dead_lettered_and_the_rest_continue(
            self, one_store, connect, simulator, municipality):
        simulator.faults.set(malformed_rate=self.malformed_rate)
        report = self.runner(one_store, connect()).run_once()
        assert report.ok, report
        dead = one_store.dead_letters(limit=1000, source_system=self.name)
        assert dead, "some records were served malformed"
        assert all(d.reason for d in dead)
        assert report.dead_letters == len(dead)
        stored = sum(self.stored_counts(one_store).values())
        assert 0 < stored < sum(self.expected_counts(municipality).values())
        # Reading the same bad records again keeps one dead letter each.
        self.runner(one_store, connect()).run_once()
        assert len(one_store.dead_letters(limit=1000, source_system=self.name)) == len(dead)

    def test_outage_is_reported_then_caught_up(self, one_store, connect, simulator, municipality):
        connector = connect()
        runner = self.runner(one_store, connector, breaker_threshold=2, breaker_cooldown=0.0)
        simulator.stop()
        down = runner.run_once()
        assert not down.ok and "source_unavailable" in down.connectors[self.name].error
        simulator.restart()
        up = runner.run_once()
        assert up.ok, up
        assert self.stored_counts(one_store) == self.expected_counts(municipality)

    def test_server_errors_are_retried(self, one_store, connect, simulator, municipality):
        simulator.faults.set(error_rate=0.25)
        report = self.runner(one_store, connect()).run_once()
        assert report.ok, report
        assert self.stored_counts(one_store) == self.expected_counts(municipality)

    def test_timeouts_are_retried(self, one_store, connect, simulator, municipality):
        simulator.faults.set(timeout_rate=0.05, timeout_seconds=self.client_timeout + 0.5)
        report = self.runner(one_store, connect()).run_once()
        assert report.ok, report
        assert self.stored_counts(one_store) == self.expected_counts(municipality)

    def test_expired_token_is_renewed(self, one_store, connect, simulator, municipality):
        connector = connect()
        runner = self.runner(one_store, connector)
        runner.run_once()
        simulator.faults.expire_tokens()
        one_store.reset_cursors(self.name)  # read everything again with the expired token
        report = runner.run_once()
        assert report.ok, report
        assert simulator.faults.tokens_rejected > 0, "the server refused the old token"
        assert self.stored_counts(one_store) == self.expected_counts(municipality)
