"""Which stream an event belongs to. Every event is appended to exactly one stream."""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID, uuid5

from hub.domain import events as ev

#: Namespace for stream ids (uuid5 of the stream name).
STREAM_NAMESPACE = UUID("6f1c2a8e-5b7d-4c39-9a57-0d6e3b1f2a44")


class NoStream(ValueError):
    """The event names neither a case, a person, nor a stream of its own."""


# Event types with a stream of their own: type -> (stream prefix, payload attribute or None for
# the subject's person key, whether the subject's person key is appended).
_OWN_STREAM: dict[type, tuple[str, str | None, bool]] = {
    ev.PathwayStarted: ("pathway", "pathway_id", False),
    ev.PathwayMembersChanged: ("pathway", "pathway_id", False),
    ev.PathwayTovholderAssigned: ("pathway", "pathway_id", False),
    ev.PathwayMeetingHeld: ("pathway", "pathway_id", False),
    ev.PathwayPlanUpdated: ("pathway", "pathway_id", False),
    ev.PathwayClosed: ("pathway", "pathway_id", False),
    ev.TargetGroupMatchStarted: ("match", "rule_id", True),
    ev.TargetGroupMatchEnded: ("match", "rule_id", True),
    ev.OverlapDetected: ("overlap", "overlap_id", False),
    ev.OverlapResolved: ("overlap", "overlap_id", False),
    ev.PersonRecordAccessed: ("access", None, True),
    ev.SupervisionSampleDrawn: ("supervision", "sample_id", False),
}
_PERSON_TYPES = frozenset(ev.PAYLOAD_TYPES[name] for name in ev.PERSON_EVENTS)


def stream_name(payload: ev.Payload, *, case_key: str | None, person_key: str | None) -> str:
    """The stream's name: case:<key>, person:<pseudonym>, pathway:<id>, match:<rule>:<person>,
    overlap:<id>, access:<person>, supervision:<id>.
    """
    cls = type(payload)
    own = _OWN_STREAM.get(cls)
    if own is not None:
        prefix, attr, with_subject = own
        parts = [prefix]
        if attr is not None:
            parts.append(getattr(payload, attr))
        if with_subject:
            parts.append(_subject(payload, person_key))
        return ":".join(parts)
    if case_key and cls not in _PERSON_TYPES:
        return f"case:{case_key}"
    return f"person:{_subject(payload, person_key)}"


def _subject(payload: ev.Payload, person_key: str | None) -> str:
    if not person_key:
        raise NoStream(f"{type(payload).__name__} needs a person (none given)")
    return person_key


@lru_cache(maxsize=1 << 20)
def stream_id(name: str) -> UUID:
    return uuid5(STREAM_NAMESPACE, name)


def case_stream_id(case_key: str) -> UUID:
    return stream_id(f"case:{case_key}")


def person_stream_id(person_key: str) -> UUID:
    return stream_id(f"person:{person_key}")
