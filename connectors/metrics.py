"""Prometheus metrics per connector (``glasplade run --metrics-port P`` serves them).

Each ``ConnectorMetrics`` has its own registry, so several runners (tests) never collide.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from connectors.status import ConnectorStatus

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class ConnectorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter("glasplade_connector_events_stored",
                              "Events stored from the connector", ["connector"], registry=r)
        self.duplicates = Counter("glasplade_connector_duplicates",
                                  "Events read again and skipped as already stored",
                                  ["connector"], registry=r)
        self.dead_letters = Counter("glasplade_connector_dead_letters",
                                    "Source records dead-lettered", ["connector"], registry=r)
        self.batches = Counter("glasplade_connector_batches",
                               "Batches committed (events + cursor in one transaction)",
                               ["connector"], registry=r)
        self.failures = Counter("glasplade_connector_failures",
                                "Passes that ended in an error", ["connector", "kind"],
                                registry=r)
        self.lag = Gauge("glasplade_connector_lag_seconds",
                         "Now minus the newest business time seen", ["connector"], registry=r)
        self.backlog = Gauge("glasplade_connector_backlog_records",
                             "Records waiting in the source after the last pass (Kafka)",
                             ["connector"], registry=r)
        self.breaker = Gauge("glasplade_connector_breaker_state",
                             "Circuit breaker: 0 closed, 1 half-open, 2 open", ["connector"],
                             registry=r)
        self.consecutive_failures = Gauge("glasplade_connector_consecutive_failures",
                                          "Failed passes in a row", ["connector"], registry=r)
        self.last_success = Gauge("glasplade_connector_last_success_timestamp_seconds",
                                  "When the last pass succeeded (Unix time)", ["connector"],
                                  registry=r)

    def batch(self, connector: str, stored: int, duplicates: int, dead_letters: int) -> None:
        self.events.labels(connector).inc(stored)
        self.duplicates.labels(connector).inc(duplicates)
        self.dead_letters.labels(connector).inc(dead_letters)
        self.batches.labels(connector).inc()

    def failure(self, connector: str, kind: str) -> None:
        self.failures.labels(connector, kind).inc()

    def status(self, s: ConnectorStatus) -> None:
        if s.backlog is not None:
            self.backlog.labels(s.connector).set(s.backlog)
        else:  # unknown now: no stale figure
            with contextlib.suppress(KeyError):
                self.backlog.remove(s.connector)
        lag = s.lag_seconds()
        if lag is not None:
            self.lag.labels(s.connector).set(lag)
        self.breaker.labels(s.connector).set(BREAKER_STATES.get(s.breaker, 0))
        self.consecutive_failures.labels(s.connector).set(s.consecutive_failures)
        if s.last_success_at is not None:
            self.last_success.labels(s.connector).set(s.last_success_at.timestamp())

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve /metrics in a background thread."""
        start_http_server(port, addr=addr, registry=self.registry)
