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
from hub.store.eventstore import EventStore

CONSENT_TOPICS = frozenset({"ConsentGiven", "ConsentWithdrawn"})


def consent_facts(store: EventStore, person_key: str) -> list[ConsentFact]:
    """Every consent in the person's stream, in the order given, with withdrawals applied."""
    given: dict[str, ConsentFact] = {}
    withdrawn: set[str] = set()
    for row in store.recorder.stream_rows(person_stream_id(person_key)):
        if row.topic not in CONSENT_TOPICS:
            continue
        p = store.from_row(row).payload
        if isinstance(p, ev.ConsentGiven):
            given[p.consent_id] = ConsentFact(p.consent_id, p.purpose, tuple(p.unit_ids),
                                              p.valid_from, p.valid_until)
            withdrawn.discard(p.consent_id)  # given again after a withdrawal
        elif isinstance(p, ev.ConsentWithdrawn):
            withdrawn.add(p.consent_id)
    return [ConsentFact(c.consent_id, c.purpose, c.unit_ids, c.valid_from, c.valid_until,
                        withdrawn=c.consent_id in withdrawn) for c in given.values()]
