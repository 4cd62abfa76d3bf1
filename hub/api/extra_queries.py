"""Queries the API needs beyond ``projections.queries``.

Consent state is read straight from the person's stream in the event store, not from the
citizen-overview read model: a consent given or withdrawn (through the API or by the ingest)
then counts on the very next request, however far the projections are behind. Only the
consent rows of the stream are decrypted (the topic is a clear column).
"""

from __future__ import annotations

from hub.domain import events as ev
from hub.domain.access import ConsentFact
from hub.domain.streams import person_stream_id
from hub.store.contract import StoredRow
from hub.store.eventstore import EventStore

CONSENT_TOPICS = ev.CONSENT_EVENTS


def consent_facts(store: EventStore, person_key: str) -> list[ConsentFact]:
    """Every consent of the person, in the order given, with withdrawals applied: those in
    their stream and those recorded under an identifier they replaced (a consent given while the
    citizen had a substitute number still counts once the CPR number replaces it)."""
    given: dict[str, ConsentFact] = {}
    withdrawn: set[str] = set()
    for row in _consent_rows(store, person_key, set()):
        p = store.from_row(row).payload
        if isinstance(p, ev.ConsentGiven):
            given[p.consent_id] = ConsentFact(p.consent_id, p.purpose, tuple(p.unit_ids),
                                              p.valid_from, p.valid_until)
            withdrawn.discard(p.consent_id)  # given again after a withdrawal
        elif isinstance(p, ev.ConsentWithdrawn):
            withdrawn.add(p.consent_id)
    return [ConsentFact(c.consent_id, c.purpose, c.unit_ids, c.valid_from, c.valid_until,
                        withdrawn=c.consent_id in withdrawn) for c in given.values()]


def _consent_rows(store: EventStore, person_key: str, seen: set[str]) -> list[StoredRow]:
    """The consent rows of the person's stream and of the streams of the identifiers it
    replaced (``PersonIdentifierReplaced`` is in the new identifier's stream), in global
    order. Only those rows and the replacements are decrypted."""
    if person_key in seen:
        return []
    seen.add(person_key)
    rows = store.recorder.stream_rows(person_stream_id(person_key))
    found = [r for r in rows if r.topic in CONSENT_TOPICS]
    for r in rows:
        if r.topic == "PersonIdentifierReplaced":
            p = store.from_row(r).payload
            if isinstance(p, ev.PersonIdentifierReplaced):
                found += _consent_rows(store, store.person_key(p.old_identifier), seen)
    return sorted(found, key=lambda r: r.position)
