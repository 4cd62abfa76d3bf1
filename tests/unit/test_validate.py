"""The validator: a record (JSON or Avro form) becomes a canonical event or a clear reason."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest

from hub import schemas as schemas_mod
from hub.domain import events as ev
from hub.domain.cpr import synthetic_cpr
from hub.ingest.formats import event_to_json, read_file, write_avro
from hub.ingest.validate import Rejected, Validator
from tests.fixtures.make_fixtures import sample_events

PERSON = synthetic_cpr(date(1975, 3, 9), 4)


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator(schemas_mod.default())


def record(**over) -> dict:
    d = {"event_id": str(uuid.uuid4()), "event_type": "CaseStatusChanged", "schema_version": 1,
         "source_system": "dubu", "source_record_id": "S-1", "source_version": "3",
         "occurred_at": "2024-05-01T10:00:00+02:00", "person": PERSON, "case_key": "dubu:S-1",
         "payload": {"status": "active", "previous_status": "open"}}
    d.update(over)
    return d


def test_a_good_json_record(validator):
    e = validator.from_json(record())
    assert e.payload == ev.CaseStatusChanged("active", "open")
    assert e.dedupe_key == ("dubu", "S-1", "3")
    assert e.occurred_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert e.person == PERSON and e.case_key == "dubu:S-1"


def test_naive_times_are_danish_local_time(validator):
    e = validator.from_json(record(occurred_at="2024-07-01T12:00:00"))
    assert e.occurred_at.tzinfo == ZoneInfo("Europe/Copenhagen")
    assert e.occurred_at.astimezone(UTC).hour == 10


@pytest.mark.parametrize("over,reason", [
    ({"event_type": "CaseTeleported"}, "unknown event type"),
    ({"event_type": None}, "event_type is missing"),
    ({"source_record_id": ""}, "missing required field(s): source_record_id"),
    ({"source_version": ""}, "missing required field(s): source_version"),
    ({"source_system": None}, "missing required field(s): source_system"),
    ({"occurred_at": None}, "missing required field(s): occurred_at"),
    ({"source_version": 3}, "source_version must be a string"),
    ({"case_key": 17}, "case_key must be a string or null"),
    ({"schema_version": 0}, "schema_version 0"),
    ({"schema_version": 99}, "schema_version 99"),
    ({"schema_version": "1"}, "schema_version '1'"),
    ({"event_id": "not-a-uuid"}, "is not a UUID"),
    ({"occurred_at": "yesterday"}, "not an ISO 8601 timestamp"),
    ({"person": "0000000000"}, "person is not a CPR"),
    ({"person": "750309-4004"}, "person is not a CPR"),
    ({"payload": {"status": 5}}, "CaseStatusChanged"),
    ({"payload": {"state": "x"}}, "unknown field"),
    ({"payload": "active"}, "expected an object"),
    ({"person": None, "case_key": None}, "needs a person"),
])
def test_bad_json_records_are_rejected_with_a_reason(validator, over, reason):
    with pytest.raises(Rejected) as info:
        validator.from_json(record(**over))
    assert reason in str(info.value)


def test_a_non_object_is_rejected(validator):
    with pytest.raises(Rejected, match="expected a JSON object"):
        validator.from_json([1, 2])


def test_a_json_record_with_a_nested_record_is_accepted(validator):
    # PersonRegistered's schema refers to the named record Address.
    e = ev.CanonicalEvent(
        event_id=uuid.uuid4(), source_system="cpr", source_record_id="p", source_version="1",
        occurred_at=datetime(2024, 1, 1, tzinfo=UTC), person=PERSON,
        payload=ev.PersonRegistered("Testa", "Testesen", date(1975, 3, 9), "K",
                                    address=ev.Address("Glasvej", "1", "9990", "Glasby")))
    got = validator.from_json(orjson.loads(event_to_json(e)))
    assert got.payload == e.payload


@pytest.mark.parametrize("name", sorted(ev.PAYLOAD_TYPES))
def test_every_event_type_in_json_form(validator, name):
    for e in (x for x in sample_events(1) if x.event_type == name):
        assert validator.from_json(orjson.loads(event_to_json(e))).payload == e.payload


def test_every_event_type_in_avro_form(validator, tmp_path):
    events = sample_events(1)
    write_avro(tmp_path / "e.avro", events, schemas_mod.default())
    got = [validator.from_avro(r.record)
           for r in read_file(tmp_path / "e.avro", schemas_mod.default())]
    assert [g.payload for g in got] == [e.payload for e in events]


def test_avro_payload_must_name_its_record(validator):
    with pytest.raises(Rejected, match="named record"):
        validator.from_avro(record(payload={"status": "x"}))
    with pytest.raises(Rejected, match="does not match the payload record"):
        validator.from_avro(record(event_type="CaseClosed",
                                   payload=(f"{schemas_mod.NAMESPACE}.CaseReopened",
                                            {"reason": None})))


# --- records as the hub's Avro reader decodes them ---------------------------------------


def _decoded(tmp_path, events: list[ev.CanonicalEvent]) -> list[dict]:
    """The records of ``events`` as the hub's reader decodes them from a container file."""
    path = tmp_path / "d.avro"
    write_avro(path, events, schemas_mod.default())
    return [r.record for r in read_file(path, schemas_mod.default())]


def _good_avro(tmp_path) -> dict:
    e = ev.CanonicalEvent(
        event_id=uuid.uuid4(), source_system="dubu", source_record_id="S-1", source_version="3",
        occurred_at=datetime(2024, 5, 1, 8, tzinfo=UTC), person=PERSON, case_key="dubu:S-1",
        payload=ev.CaseStatusChanged("active", "open"))
    (rec,) = _decoded(tmp_path, [e])
    return rec


def _named(name: str, body: dict) -> tuple[str, dict]:
    return (f"{schemas_mod.NAMESPACE}.{name}", body)


@pytest.mark.parametrize("over,reason", [
    ({"event_type": "CaseClosed"}, "does not match the payload record"),
    ({"event_type": "CaseTeleported", "payload": _named("CaseTeleported", {"status": "x"})},
     "unknown event type"),
    ({"payload": {"status": "active"}}, "named record"),
    # the envelope's checks are the JSON records' (above); here what decoding leaves to them
    ({"source_version": ""}, "missing required field(s): source_version"),
    ({"person": "750309-4004"}, "person is not a CPR"),
    ({"payload": _named("CaseStatusChanged", {"status": "x", "colour": "red"})},
     "CaseStatusChanged"),
    ({"payload": _named("CaseStatusChanged", {})}, "CaseStatusChanged"),
    ({"payload": _named("CaseStatusChanged", None)}, "CaseStatusChanged"),
])
def test_bad_decoded_avro_records_are_rejected_with_a_reason(validator, tmp_path, over, reason):
    rec = _good_avro(tmp_path)
    assert validator.from_avro(rec).source_record_id == "S-1"
    rec.update(over)
    with pytest.raises(Rejected) as info:
        validator.from_avro(rec)
    assert reason in str(info.value)


def test_unusual_but_good_avro_records_are_accepted(validator, tmp_path):
    rec = _good_avro(tmp_path)
    rec["occurred_at"] = datetime(2024, 7, 1, 12)  # naive: Danish local time
    rec["event_id"] = str(rec["event_id"])         # text, as event_to_avro gives it
    e = validator.from_avro(rec)
    assert e.occurred_at.astimezone(UTC).hour == 10
    assert isinstance(e.event_id, uuid.UUID)


@pytest.mark.parametrize("name", ["CasePassivated", "CaseClosed", "CaseReopened"])
def test_records_of_the_same_shape_become_their_own_class(validator, tmp_path, name):
    # The three records have the same fields: only the branch name tells them apart.
    rec = _good_avro(tmp_path)
    rec.update(event_type=name, payload=_named(name, {"reason": "r"}))
    got = validator.from_avro(rec)
    assert type(got.payload) is ev.PAYLOAD_TYPES[name]
    assert got.event_type == name
