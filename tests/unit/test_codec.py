"""Payload classes to and from dicts (Avro records, JSON, stored state)."""

from __future__ import annotations

from datetime import date, datetime

import orjson
import pytest

from hub.domain import events as ev
from hub.domain.codec import (
    PayloadError,
    payload_from_dict,
    payload_from_record,
    payload_to_dict,
    record_reader,
)
from tests.fixtures.make_fixtures import sample_payload


@pytest.mark.parametrize("name", sorted(ev.PAYLOAD_TYPES))
@pytest.mark.parametrize("fill", [True, False], ids=["full", "minimal"])
def test_every_payload_round_trips_as_dict_and_as_json_text(name, fill):
    cls = ev.PAYLOAD_TYPES[name]
    p = sample_payload(cls, 3, fill_optional=fill)
    assert payload_from_dict(cls, payload_to_dict(p)) == p
    # Through JSON text (dates as ISO strings), as stored state and JSON Lines carry them.
    assert payload_from_dict(cls, orjson.loads(orjson.dumps(p)), from_text=True) == p


def test_nested_address_and_tuples():
    p = payload_from_dict(ev.PersonAddressChanged, {"address": {
        "street": "Glasvej", "house_number": "1", "postcode": "9990", "city": "Glasby"}})
    assert p.address == ev.Address("Glasvej", "1", "9990", "Glasby")
    c = payload_from_dict(ev.ConsentGiven, {"consent_id": "c", "purpose": "p",
                                            "unit_ids": ["a", "b"], "valid_from": date(2024, 1, 1)})
    assert c.unit_ids == ("a", "b")
    assert payload_to_dict(c)["unit_ids"] == ["a", "b"]


@pytest.mark.parametrize("data,match", [
    ({"status": "open", "colour": "red"}, "unknown field"),
    ({}, "status"),
    ("open", "expected an object"),
])
def test_bad_shapes_are_payload_errors(data, match):
    with pytest.raises(PayloadError, match=match):
        payload_from_dict(ev.CaseStatusChanged, data)


@pytest.mark.parametrize("value,from_text", [
    ("2024-13-01", True),            # no such date
    ("2024-01-01", False),           # text where a date object is expected (Avro form)
    (datetime(2024, 1, 1), False),   # a timestamp is not a date
    (20240101, True),
])
def test_bad_dates_are_payload_errors(value, from_text):
    with pytest.raises(PayloadError, match="ended_on"):
        payload_from_dict(ev.GrantEnded, {"grant_id": "g", "ended_on": value},
                          from_text=from_text)


def test_a_list_field_must_be_a_list():
    with pytest.raises(PayloadError, match="unit_ids"):
        payload_from_dict(ev.ConsentGiven, {"consent_id": "c", "purpose": "p",
                                            "unit_ids": "a,b", "valid_from": date(2024, 1, 1)})


# --- records as Avro decoding gives them ------------------------------------------------------

_ADDRESS = {"street": "Glasvej", "house_number": "1", "postcode": "9990", "city": "Glasby",
            "floor": None, "door": None, "municipality_code": None, "address_id": None}


@pytest.mark.parametrize("name", sorted(ev.PAYLOAD_TYPES))
def test_every_payload_from_its_avro_record(name):
    cls = ev.PAYLOAD_TYPES[name]
    for fill in (True, False):
        p = sample_payload(cls, 5, fill_optional=fill)
        got = payload_from_record(cls, payload_to_dict(p))  # arrays as lists, Address as dict
        assert got == p and type(got) is cls
        assert record_reader(cls)(payload_to_dict(p)) == p


def test_an_address_branch_comes_as_a_dict_or_as_name_and_record():
    body = {"first_name": "Testa", "last_name": "Testesen", "birth_date": date(1975, 3, 9),
            "sex": "K", "civil_status": None, "protected_address": False}
    want = ev.Address("Glasvej", "1", "9990", "Glasby")
    as_dict = payload_from_record(ev.PersonRegistered, {**body, "address": dict(_ADDRESS)})
    as_branch = payload_from_record(ev.PersonRegistered, {
        **body, "address": ("dk.glasplade.events.Address", dict(_ADDRESS))})
    assert as_dict.address == as_branch.address == want
    assert payload_from_record(ev.PersonRegistered, {**body, "address": None}).address is None


def test_the_record_is_not_changed():
    data = {"consent_id": "c", "purpose": "p", "unit_ids": ["a"], "valid_from": date(2024, 1, 1),
            "valid_until": None}
    assert payload_from_record(ev.ConsentGiven, data).unit_ids == ("a",)
    assert data["unit_ids"] == ["a"]  # a dead letter shows the record as it was read


@pytest.mark.parametrize("cls,data", [
    (ev.CaseStatusChanged, {"status": "open", "colour": "red"}),   # a field the class lacks
    (ev.CaseStatusChanged, {"previous_status": "open"}),           # a required field missing
    (ev.CaseStatusChanged, None),                                  # not a record
    (ev.PersonAddressChanged, {"address": {"street": "Glasvej"}}),  # an incomplete Address
    (ev.PersonAddressChanged, "Glasvej 1"),
    (ev.ConsentGiven, {"consent_id": "c", "purpose": "p", "unit_ids": 5,
                       "valid_from": date(2024, 1, 1)}),
])
def test_records_that_do_not_fit_their_class_are_payload_errors(cls, data):
    with pytest.raises(PayloadError, match=cls.__name__):
        payload_from_record(cls, data)
