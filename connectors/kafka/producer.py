"""The outbox's way to Kafka: canonical events published as Avro Envelopes, keyed by person.

Records are keyed by ``person_key`` (the pseudonym, never the CPR number), so one person's events
land on one partition in order; events without a person fall back to their case key. By default
the clear ``person`` field is left out of the record: downstream consumers get the pseudonym only.
``include_person=True`` is for a source pushing into a hub (the hub pseudonymizes on ingest).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

from kafka import KafkaProducer
from kafka.errors import KafkaError

from connectors.kafka import codec
from connectors.kafka.config import KafkaConfig
from hub import schemas as schemas_mod
from hub.domain import events as ev
from hub.ingest.connector import SourceUnavailable
from hub.store.eventstore import EventStore


@dataclasses.dataclass(frozen=True, slots=True)
class Published:
    partition: int
    offset: int


class OutboxPublisher:
    """Publishes canonical events to ``config.topic``; ``publish`` returns once all are acked."""

    def __init__(self, config: KafkaConfig, schemas: schemas_mod.Schemas | None = None, *,
                 pseudonymize: Callable[[str], str] | None = None, include_person: bool = False):
        self.config = config
        self.schemas = schemas or schemas_mod.default()
        self.pseudonymize = pseudonymize
        self.include_person = include_person
        try:
            self._producer = KafkaProducer(acks="all", max_block_ms=config.request_timeout_ms,
                                           **config.client_kwargs())
        except KafkaError as exc:
            raise SourceUnavailable(f"kafka: cannot reach {config.bootstrap_servers}: {exc}"
                                    ) from exc

    def _prepared(self, e: ev.CanonicalEvent) -> tuple[ev.CanonicalEvent, bytes | None]:
        """The record to send and its key. With ``include_person`` the record carries the CPR
        number and no pseudonym (the receiving hub pseudonymizes with its own key); without, it
        carries the pseudonym only. The key is always the pseudonym (or the case key)."""
        person_key = e.person_key
        if person_key is None and e.person is not None:
            if self.pseudonymize is None:
                raise ValueError("an event with a person needs pseudonymize= (its Kafka key is "
                                 "the person's pseudonym, never the CPR number)")
            person_key = self.pseudonymize(e.person)
        key = person_key or e.case_key
        if self.include_person:
            record = dataclasses.replace(e, person_key=None, position=None)
        else:
            record = dataclasses.replace(e, person=None, person_key=person_key, position=None)
        return record, key.encode() if key else None

    def publish(self, events: Iterable[ev.CanonicalEvent], *, partition: int | None = None
                ) -> list[Published]:
        """Send and wait for every ack; ``partition`` overrides the key-based choice."""
        futures = []
        try:
            for e in events:
                record, key = self._prepared(e)
                value = codec.encode(record, self.schemas, self.config.framing,
                                     self.config.schema_id or 1)
                futures.append(self._producer.send(self.config.topic, value=value, key=key,
                                                   partition=partition))
            self._producer.flush(timeout=self.config.request_timeout_ms / 1000)
            return [Published(m.partition, m.offset)
                    for m in (f.get(timeout=self.config.request_timeout_ms / 1000)
                              for f in futures)]
        except KafkaError as exc:
            raise SourceUnavailable(f"kafka: publish to {self.config.topic} failed: {exc}"
                                    ) from exc

    def send_raw(self, value: bytes, *, partition: int, key: bytes | None = None) -> Published:
        """One record as given (for replaying dead letters, and for tests of poison records)."""
        try:
            m = self._producer.send(self.config.topic, value=value, key=key,
                                    partition=partition).get(
                timeout=self.config.request_timeout_ms / 1000)
        except KafkaError as exc:
            raise SourceUnavailable(f"kafka: publish to {self.config.topic} failed: {exc}"
                                    ) from exc
        return Published(m.partition, m.offset)

    def publish_from_store(self, store: EventStore, after: int, limit: int = 1000,
                           types: Sequence[str] = ()) -> tuple[int, int]:
        """The outbox relay: events after store position ``after``; returns (count, last
        position). The caller keeps ``last position`` (e.g. as a projection position)."""
        batch = store.read(after=after, limit=limit, types=types)
        if not batch:
            return 0, after
        self.publish(batch)
        return len(batch), batch[-1].position or after

    def close(self) -> None:
        self._producer.close(timeout=5)
