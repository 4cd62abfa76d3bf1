"""Edge cases of the connectors' exactly-once and dead-letter promises (review findings).

Each test here failed on the code it was written against; see the review report for the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import fastavro
import pytest

from connectors import registry
from connectors.kafka.connector import open_consumer
from connectors.runner import ConnectorRunner
from connectors.simulation import FaultConfig
from hub import schemas as schemas_mod
from hub.config import Settings
from hub.ingest.formats import FileUnreadable, event_to_avro, read_file
from hub.ingest.pipeline import Ingestor, IngestSummary
from hub.ingest.validate import Validator
from hub.store.eventstore import EventStore
from hub.synthetic.model import StatusChange
from tests.conftest import make_store
from tests.connectors.conftest import make_municipality
from tests.connectors.kafka_broker import kafka_broker  # noqa: F401 - the fixture
from tests.connectors.suite import FAST_RETRY
from tests.connectors.test_kafka import TOPIC, config, person_event, stored_ids


@pytest.fixture
def one_store(sqlite_url) -> Iterator[EventStore]:
    s = make_store(sqlite_url)
    yield s
    s.close()


@pytest.fixture
def system(monkeypatch):
    """``system(name, municipality)`` -> a connector built by the registry from the settings
    that point it at that system's simulator (started now, stopped after the test)."""
    started, built = [], []

    def make(name: str, municipality, store: EventStore | None = None, **extra_env: str):
        sim = registry.simulator_factory(name)(municipality, FaultConfig(seed=7))
        sim.start()
        started.append(sim)
        prefix = name.upper()
        env = {f"{prefix}_TIMEOUT": "2", f"{prefix}_RETRY_ATTEMPTS": "2",
               f"{prefix}_RETRY_INITIAL": "0.01", **sim.env(), **extra_env}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        connector = registry.connector_factory(name)(Settings(), store=store)
        built.append(connector)
        return connector, sim

    yield make
    for c in built:
        c.close()
    for s in started:
        s.stop()


def _runner(store: EventStore, *connectors) -> ConnectorRunner:
    return ConnectorRunner(store, list(connectors), retry=FAST_RETRY)


# --- SBSYS: a case that returns to an earlier state --------------------------------------------


def _change(municipality, case, **fields) -> None:
    """The case changes in SBSYS two hours later (SenestAendret moves)."""
    municipality.as_of += timedelta(hours=2)
    for k, v in fields.items():
        setattr(case, k, v)
    if "status" in fields:
        case.status_history.append(StatusChange(fields["status"], municipality.as_of))
    case.updated_at = municipality.as_of


def test_sbsys_status_that_returns_to_an_earlier_one_is_recorded(one_store, system):
    m = make_municipality()
    connector, _ = system("sbsys", m, store=one_store)
    runner = _runner(one_store, connector)
    assert runner.run_once().ok
    case = next(c for c in m.cases if c.system == "sbsys" and c.status == "active")
    key = f"sbsys:{case.case_id}"

    _change(m, case, status="passive")
    assert runner.run_once().ok
    _change(m, case, status="active")  # reactivated: a change the store must learn
    report = runner.run_once()
    assert report.ok, report

    statuses = [e.payload.status for e in one_store.case_events(key)
                if e.event_type == "CaseStatusChanged"]
    assert statuses == ["active", "passive", "active"], (
        "the case is active again in SBSYS, but the store still says passive")


def _handed_there_and_back(store: EventStore, system, name: str) -> tuple[str, str, str]:
    """A case of ``name`` handed to another caseworker of its unit and back, a pass after each
    step: (case key, first caseworker, the other)."""
    m = make_municipality()
    connector, _ = system(name, m, store=store)
    runner = _runner(store, connector)
    assert runner.run_once().ok
    case = next(c for c in m.cases if c.system == name and c.caseworker_id)
    first = case.caseworker_id
    other = next(w.caseworker_id for w in m.caseworkers
                 if w.unit_id == case.unit_id and w.caseworker_id != first)
    _change(m, case, caseworker_id=other)
    assert runner.run_once().ok
    _change(m, case, caseworker_id=first)  # handed back to the first caseworker
    assert runner.run_once().ok
    return f"{name}:{case.case_id}", first, other


@pytest.mark.parametrize("name", ["sbsys", "cura"])  # Cura: the responsible caseworker
def test_a_caseworker_that_returns_is_recorded(one_store, system, name):
    key, first, other = _handed_there_and_back(one_store, system, name)
    assigned = [e.payload.caseworker_id for e in one_store.case_events(key)
                if e.event_type == "CaseworkerAssigned"]
    assert assigned == [first, other, first], (
        "the case is back with its first caseworker, but the store still names the other")


def test_sbsys_journal_notes_refused_for_one_case_dead_letter_it_and_the_pass_goes_on(
        one_store, system):
    """SBSYS refuses one case's journal notes (404: the case's notes are not the user's to
    read). That case is dead-lettered with the reason; every other case is stored and the pass
    succeeds (it failed at the same page on every pass: a crash loop)."""
    from connectors.http import RequestRejected

    m = make_municipality()
    connector, _ = system("sbsys", m, store=one_store)
    real = connector.client.journal_notes
    ids: list[str] = []

    def journal_notes(case_id):  # noqa: ANN001, ANN202
        ids.append(str(case_id))
        if len(ids) == 1:
            raise RequestRejected("HTTP 404 for journalarknotes", 404)
        return real(case_id)

    connector.client.journal_notes = journal_notes
    report = _runner(one_store, connector).run_once()
    assert report.ok, report
    (dead,) = one_store.dead_letters(source_system="sbsys")
    assert "refused: HTTP 404" in dead.reason
    cases = {e.case_key for e in one_store.read(limit=100_000) if e.source_system == "sbsys"}
    assert len(cases) == sum(1 for c in m.cases if c.system == "sbsys")  # the refused one too


def test_dubu_pages_without_a_count_are_all_read(one_store, system):
    """OData's ``@odata.count`` is optional: a service that leaves it out must still be read to
    the end of each part (the sweep used to stop after the first page)."""
    m = make_municipality()
    connector, _ = system("dubu", m, store=one_store, DUBU_PAGE_SIZE="3")
    real = connector.client.sag_page

    def sag_page(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        page = dict(real(*args, **kw))
        page.pop("@odata.count", None)
        return page

    connector.client.sag_page = sag_page
    assert _runner(one_store, connector).run_once().ok
    cases = {e.case_key for e in one_store.read(limit=100_000) if e.source_system == "dubu"}
    assert len(cases) == sum(1 for c in m.cases if c.system == "dubu") > 3


# --- Kafka: a stored offset the broker no longer has ------------------------------------------


@pytest.mark.kafka
def test_a_kafka_offset_the_broker_no_longer_has_is_read_again_not_skipped(  # noqa: F811
        kafka_broker):  # noqa: F811
    """A stored offset the broker no longer has (topic made again, log truncated) is answered
    OFFSET_OUT_OF_RANGE by Kafka; the consumer must then read from the partition's first offset
    (the store dedupes), not jump to its end (kafka-python's default, which skips every record
    in between silently). Tansu answers such a fetch with nothing instead (docs/connectors/
    kafka.md, Limits), so the setting is checked here rather than against the broker."""
    kafka_broker.create_topic(TOPIC, partitions=1)
    consumer = open_consumer(config(kafka_broker, partitions=(0,)))
    try:
        assert consumer.config["auto_offset_reset"] == "earliest"
    finally:
        consumer.close()


def test_sbsys_change_in_the_repeated_autumn_hour_is_not_skipped(one_store, system):
    """SBSYS gives ``SenestAendret`` in local time without an offset. On the night summer time
    ends, 02:00-03:00 local happens twice; a change in the second 02:20 (01:20 UTC) read as the
    first (00:20 UTC) sorts below a high-water mark set at 01:10 UTC and is skipped, for good."""
    m = make_municipality()
    m.as_of = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 CET, the second 02:10
    connector, _ = system("sbsys", m, store=one_store)
    runner = _runner(one_store, connector)
    assert runner.run_once().ok
    case = next(c for c in m.cases if c.system == "sbsys" and c.status == "active")

    changed_at = datetime(2026, 10, 25, 1, 20, tzinfo=UTC)  # 02:20 CET, after that sweep
    case.status, case.closed_at, case.updated_at = "closed", changed_at, changed_at
    case.status_history.append(StatusChange("closed", changed_at))
    m.as_of = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    report = runner.run_once()
    assert report.ok, report

    types = [e.event_type for e in one_store.case_events(f"sbsys:{case.case_id}")]
    assert "CaseClosed" in types, "the closing was never read (skipped as older than the mark)"


# --- file ingest: a file damaged at the end ---------------------------------------------------


def test_ingest_stores_the_records_read_before_a_damaged_block(one_store, tmp_path):
    """``read_file`` yields the records of an Avro file up to a damaged block, then raises
    ``FileUnreadable`` ("unreadable after record N"), and ``glasplade ingest`` goes on with the
    next file. The N records read were counted as read but are neither stored nor rejected
    when they were still waiting in the open batch: whether they get in depends on where the
    batch boundary fell."""
    schemas = schemas_mod.default()
    events = [person_event(i) for i in range(20)]
    path = tmp_path / "damaged.avro"
    with open(path, "wb") as f:  # one block per record, so only the last one is damaged
        fastavro.writer(f, schemas.envelope, [event_to_avro(e, schemas) for e in events],
                        codec="deflate", sync_interval=1)
    path.write_bytes(path.read_bytes()[:-20])

    summary = IngestSummary()
    with pytest.raises(FileUnreadable, match="after record 19"):
        Ingestor(one_store, Validator(schemas), batch_size=2000).run(
            read_file(path, schemas), summary=summary)
    assert summary.read == 19
    assert sorted(stored_ids(one_store)) == sorted(f"rec-{i}" for i in range(19)), (
        "the 19 records read before the damage were dropped with the open batch")
