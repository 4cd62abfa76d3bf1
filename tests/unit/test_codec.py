"""Payload classes to and from dicts (Avro records, JSON, stored state)."""

from __future__ import annotations

from datetime import date, datetime

import orjson
import pytest

from hub.domain import events as ev
from hub.domain.codec import PayloadError, payload_from_dict, payload_to_dict
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
