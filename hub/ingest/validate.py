"""One record (Avro or JSON form of the envelope) -> a canonical event, or why not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from fastavro.validation import ValidationError, validate

from hub.domain import cpr
from hub.domain import events as ev
from hub.domain.codec import PayloadError, payload_from_dict, payload_from_record, payload_to_dict
from hub.domain.streams import NoStream, stream_name
from hub.schemas import NAMESPACE, Schemas

#: Naive timestamps from Danish systems are local time.
LOCAL_TZ = ZoneInfo("Europe/Copenhagen")
_REQUIRED = ("event_id", "source_system", "source_record_id", "source_version", "occurred_at",
             "payload")
_OPTIONAL_TEXT = ("person", "person_key", "case_key", "actor")


class Rejected(ValueError):
    """The record cannot become a canonical event; ``str()`` is the reason for the dead letter."""


@dataclass(frozen=True, slots=True)
class Validator:
    schemas: Schemas

    def from_avro(self, record: dict[str, Any]) -> ev.CanonicalEvent:
        """A record read from an Avro container with ``return_record_name=True``."""
        branch = record.get("payload")
        if not isinstance(branch, tuple) or len(branch) != 2:
            raise Rejected("payload is not a named record")
        name, body = branch
        short = name.removeprefix(NAMESPACE + ".")
        return self._build(record, short, body, from_text=False)

    def _payload(self, cls: type, short: str, body: Any, from_text: bool) -> ev.Payload:
        try:
            if not from_text:
                return payload_from_record(cls, body)
            payload = payload_from_dict(cls, body, from_text=True)
        except PayloadError as exc:
            raise Rejected(str(exc)) from None
        try:
            validate(payload_to_dict(payload), self.schemas.records[short], raise_errors=True)
        except ValidationError as exc:
            raise Rejected(f"{short} does not match its schema: {_fields_of(exc)}") from None
        return payload

    def from_json(self, record: Any) -> ev.CanonicalEvent:
        """A hand-made JSON record: the envelope's fields, ``event_type``, ``payload`` object."""
        if not isinstance(record, dict):
            raise Rejected(f"expected a JSON object, got {type(record).__name__}")
        short = record.get("event_type")
        if not isinstance(short, str):
            raise Rejected("event_type is missing")
        return self._build(record, short, record.get("payload"), from_text=True)

    def _build(self, record: dict[str, Any], short: str, body: Any, *, from_text: bool
               ) -> ev.CanonicalEvent:
        cls = ev.PAYLOAD_TYPES.get(short)
        if cls is None:
            raise Rejected(f"unknown event type {short!r}")
        declared = record.get("event_type", short)
        if declared != short:
            raise Rejected(f"event_type {declared!r} does not match the payload record {short!r}")
        missing = [k for k in _REQUIRED if record.get(k) in (None, "")]
        if missing:
            raise Rejected(f"missing required field(s): {', '.join(missing)}")
        for k in ("source_system", "source_record_id", "source_version"):
            if not isinstance(record[k], str):
                raise Rejected(f"{k} must be a string")
        for k in _OPTIONAL_TEXT:
            if record.get(k) is not None and not isinstance(record[k], str):
                raise Rejected(f"{k} must be a string or null")
        version = record.get("schema_version", 1)
        known = self.schemas.versions[short]
        if not isinstance(version, int) or not 1 <= version <= known:
            raise Rejected(f"schema_version {version!r} of {short} is not one this hub knows "
                           f"(1..{known})")
        event_id = record["event_id"]
        if not isinstance(event_id, UUID):
            try:
                event_id = UUID(str(event_id))
            except ValueError:
                raise Rejected("event_id is not a UUID") from None
        occurred_at = _timestamp(record["occurred_at"], "occurred_at")
        payload = self._payload(cls, short, body, from_text)
        person = record.get("person")
        if person is not None and not _valid_person(person):
            raise Rejected("person is not a CPR or substitute number of valid form")
        try:
            stream_name(payload, case_key=record.get("case_key"),
                        person_key=record.get("person_key") or person)
        except NoStream as exc:
            raise Rejected(str(exc)) from None
        return ev.CanonicalEvent(
            event_id=event_id,
            source_system=record["source_system"],
            source_record_id=record["source_record_id"],
            source_version=record["source_version"],
            occurred_at=occurred_at,
            payload=payload,
            person=person,
            person_key=record.get("person_key"),
            case_key=record.get("case_key"),
            actor=record.get("actor"),
            schema_version=version,
        )


def _fields_of(exc: ValidationError) -> str:
    """fastavro's message quotes the bad value; keep only the field paths (no personal data)."""
    fields = {str(getattr(err, "field", "?")).removeprefix(NAMESPACE + ".")
              for err in getattr(exc, "errors", ())}
    return "invalid field(s) " + ", ".join(sorted(fields or {"?"}))


@lru_cache(maxsize=1 << 20)
def _valid_person(identifier: str) -> bool:
    return cpr.is_valid_form(identifier)


def _timestamp(value: Any, name: str) -> datetime:
    if type(value) is datetime and value.tzinfo is not None:
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise Rejected(f"{name} is not an ISO 8601 timestamp") from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise Rejected(f"{name} must be a timestamp")
    if value.tzinfo is None:
        value = value.replace(tzinfo=LOCAL_TZ)
    return value
