"""Which stream an event belongs to. Every event is appended to exactly one stream."""

from __future__ import annotations

from uuid import UUID, uuid5

from hub.domain import events as ev

#: Namespace for stream ids (uuid5 of the stream name).
STREAM_NAMESPACE = UUID("6f1c2a8e-5b7d-4c39-9a57-0d6e3b1f2a44")


class NoStream(ValueError):
    """The event names neither a case, a person, nor a stream of its own."""


def stream_name(payload: ev.Payload, *, case_key: str | None, person_key: str | None) -> str:
    """The stream's name: case:<key>, person:<pseudonym>, pathway:<id>, match:..., ..."""
    p = payload
    if isinstance(p, ev.PathwayStarted | ev.PathwayTovholderAssigned | ev.PathwayMeetingHeld
                  | ev.PathwayPlanUpdated | ev.PathwayClosed):
        return f"pathway:{p.pathway_id}"
    if isinstance(p, ev.TargetGroupMatchStarted | ev.TargetGroupMatchEnded):
        return f"match:{p.rule_id}:{_subject(p, person_key)}"
    if isinstance(p, ev.OverlapDetected | ev.OverlapResolved):
        return f"overlap:{p.overlap_id}"
    if isinstance(p, ev.PersonRecordAccessed):
        return f"access:{_subject(p, person_key)}"
    if isinstance(p, ev.SupervisionSampleDrawn):
        return f"supervision:{p.sample_id}"
    if case_key and type(p).__name__ not in ev.PERSON_EVENTS:
        return f"case:{case_key}"
    return f"person:{_subject(p, person_key)}"


def _subject(payload: ev.Payload, person_key: str | None) -> str:
    if not person_key:
        raise NoStream(f"{type(payload).__name__} needs a person (none given)")
    return person_key


def stream_id(name: str) -> UUID:
    return uuid5(STREAM_NAMESPACE, name)


def case_stream_id(case_key: str) -> UUID:
    return stream_id(f"case:{case_key}")


def person_stream_id(person_key: str) -> UUID:
    return stream_id(f"person:{person_key}")
