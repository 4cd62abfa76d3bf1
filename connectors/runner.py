"""The connector runner: the framework that commits what connectors read (Kafka Connect's split:
the connector plans and reads, the framework owns offsets).

For every stream of every connector, one pass reads from the stored cursor and commits each batch
(events, dead letters, the cursor after them) in ONE store transaction. A crash between batches
resumes from the last committed cursor; the store's dedupe absorbs records read twice.

Failures: ``SourceUnavailable`` is retried with exponential backoff and jitter (tenacity), resuming
from the stored cursor; every failed pass counts towards a circuit breaker per system, which skips
the system for a cooldown once open. One system failing never stops the others.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from connectors.http import RetryPolicy
from connectors.metrics import ConnectorMetrics
from connectors.status import ConnectorStatus, StatusStore
from hub.ingest.connector import AuthenticationFailed, Connector, SourceUnavailable, Stream
from hub.logging import get_logger
from hub.store.contract import CursorUpdate
from hub.store.eventstore import EventStore

log = get_logger("glasplade.connectors.runner")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CircuitBreaker:
    """Closed -> open after ``threshold`` failed passes in a row; open -> half-open after
    ``cooldown`` seconds; one success closes it, a failure while half-open opens it again."""

    def __init__(self, threshold: int = 3, cooldown: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self.clock() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        return self.state != "open"

    def success(self) -> None:
        self.failures = 0
        self._opened_at = None

    def failure(self) -> None:
        half_open = self.state == "half_open"
        self.failures += 1
        if half_open or self.failures >= self.threshold:
            self._opened_at = self.clock()


@dataclass
class ConnectorReport:
    """What one pass over one connector did."""

    connector: str
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    batches: int = 0
    error: str | None = None
    skipped: bool = False
    """The breaker was open: the system was not contacted."""
    streams: dict[str, int] = field(default_factory=dict)
    """Events stored per stream."""

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped


@dataclass
class RunReport:
    connectors: dict[str, ConnectorReport] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.connectors.values())

    @property
    def stored(self) -> int:
        return sum(r.stored for r in self.connectors.values())

    @property
    def duplicates(self) -> int:
        return sum(r.duplicates for r in self.connectors.values())

    @property
    def dead_letters(self) -> int:
        return sum(r.dead_letters for r in self.connectors.values())


class ConnectorRunner:
    """Runs connectors against one event store. ``run_once()`` for cron and tests,
    ``run_forever(interval)`` for ``glasplade run``."""

    def __init__(self, store: EventStore, connectors: Sequence[Connector], *,
                 status: StatusStore | None = None, metrics: ConnectorMetrics | None = None,
                 retry: RetryPolicy = RetryPolicy(attempts=3, initial=1.0, maximum=30.0),
                 breaker_threshold: int = 3, breaker_cooldown: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = _utcnow):
        self.store = store
        self.connectors = list(connectors)
        self.status = status
        self.metrics = metrics
        self.retry = retry
        self.now = now
        self.breakers = {c.name: CircuitBreaker(breaker_threshold, breaker_cooldown, clock)
                         for c in self.connectors}

    # --- one pass -------------------------------------------------------------------------

    def run_once(self, only: Collection[str] | None = None) -> RunReport:
        report = RunReport()
        for connector in self.connectors:
            if only and connector.name not in only:
                continue
            report.connectors[connector.name] = self.run_connector(connector)
        return report

    def run_connector(self, connector: Connector) -> ConnectorReport:
        """One pass over every stream of one connector; never raises for the source's faults."""
        breaker = self.breakers.setdefault(connector.name, CircuitBreaker())
        report = ConnectorReport(connector.name)
        status = self._load_status(connector.name)
        started = self.now()
        if not breaker.allow():
            report.skipped = True
            log.info("connector skipped: circuit open", connector=connector.name)
            self._record(status.updated(breaker=breaker.state, last_run_at=started), report)
            return report
        newest = status.newest_occurred_at
        advanced = status.cursor_advanced_at
        source_down = False
        try:
            for stream in connector.streams():
                n, stream_newest, stream_advanced = self._run_stream_with_retry(
                    connector, stream, report)
                report.streams[stream.name] = n
                newest = _max(newest, stream_newest)
                advanced = stream_advanced or advanced
        except Exception as exc:  # one system's failure, whatever it is, stops only that system
            kind = ("source_unavailable" if isinstance(exc, SourceUnavailable)
                    else "authentication" if isinstance(exc, AuthenticationFailed) else "error")
            report.error = f"{kind}: {exc}"
            source_down = kind != "error"
            breaker.failure()
            if self.metrics:
                self.metrics.failure(connector.name, kind)
            log.warning("connector pass failed", connector=connector.name, kind=kind,
                        error=str(exc)[:300], breaker=breaker.state)
            status = status.updated(
                last_error_at=self.now(), last_error=report.error[:1000],
                consecutive_failures=status.consecutive_failures + 1)
        else:
            breaker.success()
            status = status.updated(last_success_at=self.now(), consecutive_failures=0)
            log.info("connector pass", connector=connector.name, stored=report.stored,
                     duplicates=report.duplicates, dead_letters=report.dead_letters,
                     batches=report.batches)
        self._record(status.updated(
            breaker=breaker.state, last_run_at=started, newest_occurred_at=newest,
            cursor_advanced_at=advanced,
            # after the source's own failure, asking it for its backlog would only wait again
            backlog=None if source_down else self._backlog(connector),
            events_stored=status.events_stored + report.stored,
            duplicates=status.duplicates + report.duplicates,
            dead_letters=status.dead_letters + report.dead_letters), report)
        return report

    def _run_stream_with_retry(self, connector: Connector, stream: Stream,
                               report: ConnectorReport
                               ) -> tuple[int, datetime | None, datetime | None]:
        retrying = Retrying(
            retry=retry_if_exception_type(SourceUnavailable),
            stop=stop_after_attempt(max(1, self.retry.attempts)),
            wait=wait_exponential_jitter(multiplier=self.retry.initial,
                                         max=self.retry.maximum, jitter=self.retry.jitter),
            before_sleep=lambda rs: log.info(
                "source unavailable, retrying", connector=connector.name, stream=stream.name,
                attempt=rs.attempt_number, error=str(rs.outcome.exception())[:200]),
            reraise=True)
        totals = [0, None, None]
        for attempt in retrying:
            with attempt:
                self._run_stream(connector, stream, report, totals)
        return totals[0], totals[1], totals[2]

    def _run_stream(self, connector: Connector, stream: Stream, report: ConnectorReport,
                    totals: list) -> None:
        """Read from the stored cursor; commit each batch with its cursor in one transaction."""
        cursor = self.store.cursors(connector.name).get(stream.name)
        with contextlib.closing(stream.read(cursor)) as batches:
            for batch in batches:
                cursors = ([CursorUpdate(connector.name, stream.name, batch.cursor)]
                           if batch.cursor is not None else [])
                outcome = self.store.append(batch.events, cursors=cursors,
                                            dead_letters=batch.dead_letters)
                report.batches += 1
                report.stored += outcome.stored
                report.duplicates += outcome.duplicates
                report.dead_letters += len(batch.dead_letters)
                totals[0] += outcome.stored
                if batch.events:
                    totals[1] = _max(totals[1], max(e.occurred_at for e in batch.events))
                if cursors:
                    totals[2] = self.now()
                if self.metrics:
                    self.metrics.batch(connector.name, outcome.stored, outcome.duplicates,
                                       len(batch.dead_letters))

    def _backlog(self, connector: Connector) -> int | None:
        """What the source still holds for this connector after a pass that read all it could
        (None: unknown, or the connector cannot say)."""
        if type(connector).backlog is Connector.backlog:
            return None
        try:
            return connector.backlog(self.store.cursors(connector.name))
        except Exception as exc:  # the source or the store is down: the pass said so already
            log.info("backlog unknown", connector=connector.name, error=str(exc)[:200])
            return None

    def _load_status(self, name: str) -> ConnectorStatus:
        if self.status:
            try:
                return self.status.get(name)
            except Exception as exc:  # health bookkeeping must never stop ingest
                log.warning("could not read connector status", connector=name,
                            error=str(exc)[:200])
        return ConnectorStatus(name)

    def _record(self, status: ConnectorStatus, report: ConnectorReport) -> None:
        if self.status:
            try:
                self.status.save(status)
            except Exception as exc:  # health bookkeeping must never stop ingest
                log.warning("could not save connector status", connector=status.connector,
                            error=str(exc)[:200])
        if self.metrics:
            self.metrics.status(status)

    # --- continuously ---------------------------------------------------------------------

    def run_forever(self, interval: float, stop: threading.Event | None = None,
                    only: Collection[str] | None = None) -> None:
        """Pass after pass, ``interval`` seconds apart, until ``stop`` is set."""
        stop = stop or threading.Event()
        while not stop.is_set():
            self.run_once(only)
            stop.wait(interval)

    def close(self) -> None:
        for c in self.connectors:
            with contextlib.suppress(Exception):
                c.close()
        if self.status:
            self.status.close()


def _max(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
