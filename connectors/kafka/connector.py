"""The Kafka push connector: one stream per partition, cursor = the next offset to read.

No consumer group: partitions are ASSIGNED and positioned with ``seek`` from the cursor the store
holds, so the offset is committed in the same transaction as the events it produced (the runner
writes each ``Batch``'s events, dead letters and cursor together). Nothing is committed to Kafka.

A record that does not decode is dead-lettered with its reason and raw bytes, and its offset is
passed like any other, so a poison record never stops the partition.
"""

from __future__ import annotations

from collections.abc import Iterator

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from connectors.kafka import codec
from connectors.kafka.config import KafkaConfig
from hub import schemas as schemas_mod
from hub.ingest.connector import Batch, Connector, SourceUnavailable, Stream
from hub.logging import get_logger
from hub.store.contract import DeadLetter

log = get_logger("connectors.kafka")


def stream_name(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def open_consumer(config: KafkaConfig) -> KafkaConsumer:
    """A consumer with no group (offsets are ours); broker errors become ``SourceUnavailable``."""
    try:
        # ``earliest``: a stored offset the broker no longer has (the topic made again, its log
        # truncated) is answered OFFSET_OUT_OF_RANGE; the consumer then reads again from the
        # first offset the partition has (the store's dedupe absorbs what it read before)
        # instead of jumping to the end and skipping everything (kafka-python's default)
        return KafkaConsumer(group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest",
                             max_poll_records=config.max_records, **config.client_kwargs())
    except KafkaError as exc:
        raise SourceUnavailable(f"kafka: cannot reach {config.bootstrap_servers}: {exc}") from exc


class PartitionStream(Stream):
    """One partition of the topic; cursor = the next offset (a decimal string)."""

    def __init__(self, connector: KafkaConnector, partition: int):
        self.connector = connector
        self.partition = partition
        self.name = stream_name(connector.config.topic, partition)

    def read(self, cursor: str | None) -> Iterator[Batch]:
        config = self.connector.config
        tp = TopicPartition(config.topic, self.partition)
        consumer = open_consumer(config)
        try:
            consumer.assign([tp])
            if cursor is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, int(cursor))
            empty_polls = 0
            while True:
                try:
                    polled = consumer.poll(timeout_ms=config.poll_timeout_ms,
                                           max_records=config.max_records)
                except KafkaError as exc:
                    raise SourceUnavailable(f"kafka: poll of {self.name} failed: {exc}") from exc
                records = polled.get(tp, [])
                if not records:
                    # An empty poll on a slow machine is not proof of being caught up: stop when
                    # the position has reached the end offset (or after a few empty polls, since
                    # some brokers under-report the end offset).
                    empty_polls += 1
                    if self._caught_up(consumer, tp) or empty_polls >= _MAX_EMPTY_POLLS:
                        return
                    continue
                empty_polls = 0
                yield self._batch(records)
        finally:
            consumer.close(autocommit=False)

    def _batch(self, records) -> Batch:
        config, schemas = self.connector.config, self.connector.schemas
        events, dead = [], []
        for rec in records:
            try:
                events.append(codec.decode(rec.value, schemas, config.framing, config.schema_id))
            except codec.Undecodable as exc:
                where = f"{rec.topic}:{rec.partition}@{rec.offset}"
                dead.append(DeadLetter(source_system=self.connector.name,
                                       reason=f"{where}: {exc}", raw=rec.value or b"",
                                       source_record_id=where))
        if dead:
            log.warning("kafka_records_dead_lettered", stream=self.name, count=len(dead))
        return Batch(events=events, dead_letters=dead, cursor=str(records[-1].offset + 1))

    def _caught_up(self, consumer: KafkaConsumer, tp: TopicPartition) -> bool:
        """An empty poll means caught up OR broker gone: the end offset tells which (and asking
        for it fails when the broker is gone). The end offset of a caught-up stream is kept for
        the pass's backlog; one the stream reads on past is not (if the pass then fails, the
        backlog asks the broker)."""
        try:
            end = consumer.end_offsets([tp])[tp]
            caught_up = consumer.position(tp) >= end
        except KafkaError as exc:
            raise SourceUnavailable(f"kafka: {self.name} unreachable: {exc}") from exc
        if caught_up:
            self.connector._pass_ends[self.partition] = end
        else:
            self.connector._pass_ends.pop(self.partition, None)
        return caught_up


#: Empty polls in a row after which a partition counts as caught up even if the broker's end
#: offset says otherwise.
_MAX_EMPTY_POLLS = 3


class KafkaConnector(Connector):
    """Canonical events pushed by another system (or another hub's outbox) onto one topic."""

    def __init__(self, config: KafkaConfig, schemas: schemas_mod.Schemas | None = None,
                 name: str = "kafka"):
        self.config = config
        self.schemas = schemas or schemas_mod.default()
        self.name = name
        self._pass_partitions: list[int] | None = None
        self._pass_ends: dict[int, int] = {}
        """The end offset each partition's stream saw last in this pass (when it stopped)."""

    @classmethod
    def from_settings(cls, settings, name: str = "kafka") -> KafkaConnector:
        return cls(KafkaConfig.from_settings(settings, name), name=name)

    def partitions(self) -> list[int]:
        if self.config.partitions:
            return list(self.config.partitions)
        consumer = open_consumer(self.config)
        try:
            found = consumer.partitions_for_topic(self.config.topic)
        except KafkaError as exc:
            raise SourceUnavailable(f"kafka: metadata request failed: {exc}") from exc
        finally:
            consumer.close(autocommit=False)
        if not found:
            raise SourceUnavailable(f"kafka: topic {self.config.topic!r} does not exist (yet)")
        return sorted(found)

    def check(self) -> None:
        self.partitions()

    def streams(self) -> list[Stream]:
        """A new pass: its partitions, and no end offsets seen yet."""
        partitions = self.partitions()
        self._pass_partitions, self._pass_ends = partitions, {}
        return [PartitionStream(self, p) for p in partitions]

    def end_offsets(self, partitions: list[int]) -> dict[int, int]:
        """Each partition's end offset, asked of the broker (one consumer)."""
        consumer = open_consumer(self.config)
        try:
            tps = [TopicPartition(self.config.topic, p) for p in partitions]
            ends = consumer.end_offsets(tps)
        except KafkaError as exc:
            raise SourceUnavailable(f"kafka: end offsets: {exc}") from exc
        finally:
            consumer.close(autocommit=False)
        return {tp.partition: end for tp, end in ends.items()}

    def _lag(self, ends: dict[int, int], cursors: dict[str, str]) -> dict[str, int]:
        names = {p: stream_name(self.config.topic, p) for p in ends}
        return {names[p]: max(0, end - int(cursors.get(names[p], 0))) for p, end in ends.items()}

    def lag(self, cursors: dict[str, str]) -> dict[str, int]:
        """Records not yet read per stream (end offset - cursor), asked of the broker now."""
        return self._lag(self.end_offsets(self.partitions()), cursors)

    def backlog(self, cursors: dict[str, str]) -> int | None:
        """The records left after this pass, from the end offsets its streams saw when they
        stopped; only a partition whose stream did not get that far (the pass failed first) is
        asked of the broker. Without a pass, the broker is asked (``lag``)."""
        if self._pass_partitions is None:
            return sum(self.lag(cursors).values())
        ends = {p: self._pass_ends[p] for p in self._pass_partitions if p in self._pass_ends}
        missing = [p for p in self._pass_partitions if p not in ends]
        if missing:
            ends.update(self.end_offsets(missing))
        return sum(self._lag(ends, cursors).values())


def from_settings(settings, store: object = None) -> KafkaConnector:
    """The registry's factory: ``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_TOPIC``, ... (see config)."""
    return KafkaConnector.from_settings(settings)
