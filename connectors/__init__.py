"""Fagsystem connectors: one folder per system (client, mapping, simulator) on a shared framework.

- ``connectors.runner``: commits each batch with its cursor, retries, circuit breakers, status
- ``connectors.http``: the one HTTP client (retries, timeouts, auth, paging)
- ``connectors.registry``: system name -> connector and simulator factories
- ``connectors.simulation``: serving simulators on 127.0.0.1, fault injection
The connector contract itself is ``hub.ingest.connector``. See docs/connectors.md.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from hub.domain import events as ev

_EVENT_NAMESPACE = uuid.UUID("2b0f4f4e-1c3a-4b8e-9d67-7e0f3d6c9a11")


class MappingError(ValueError):
    """A source record cannot become canonical events; ``str()`` is the dead letter's reason."""


def event(source_system: str, record_id: str, version: str, occurred_at: datetime,
          payload: ev.Payload, *, person: str | None = None, case_key: str | None = None,
          actor: str | None = None) -> ev.CanonicalEvent:
    """A canonical event whose id is derived from its dedupe key (the same fact read twice has
    the same id as well as the same key)."""
    return ev.CanonicalEvent(
        event_id=uuid.uuid5(_EVENT_NAMESPACE, f"{source_system}\x1f{record_id}\x1f{version}"),
        source_system=source_system, source_record_id=record_id, source_version=version,
        occurred_at=occurred_at, payload=payload, person=person, case_key=case_key, actor=actor)
