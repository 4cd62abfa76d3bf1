"""The CPR connector: looks up the persons the hub sees in cases and records what changed.

Two streams:

- ``persons``: walks the store's events after its cursor (a store position) and looks up every
  person named by another system's event, plus (``follow_relations``) their children, spouse,
  parents and co-residents, from whom households are built. Cursor = the last store position
  covered.
- ``refresh``: every ``refresh_hours`` re-looks up every person the hub has registered from CPR,
  so moves, new children and name changes are seen for persons with no new case activity.
  Cursor = ``sweep|<started>|<position>`` while sweeping, ``done|<finished>`` between sweeps.

Substitute numbers (erstatningspersonnumre) are not in the register and are not looked up. A
person the register does not know, or whose answer breaks the XSD, becomes a dead letter with the
reason; outages, timeouts and ``soap:Server`` faults raise ``SourceUnavailable`` (the runner
retries and resumes from the cursor).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from connectors.cpr import mapping
from connectors.cpr.client import (
    CprClient,
    InvocationContext,
    MalformedReply,
    PersonNotFound,
    PersonRecord,
)
from connectors.http import RetryPolicy
from connectors.stores import LazyStore, StoreOrFactory, store_or_opener
from hub.config import ConfigError, Settings
from hub.domain import cpr as cprnum
from hub.domain import events as ev
from hub.ingest.connector import Batch, Connector, SourceUnavailable, Stream
from hub.logging import get_logger
from hub.store.contract import DeadLetter
from hub.store.eventstore import EventStore

log = get_logger("glasplade.connectors.cpr")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def lookupable(identifier: str | None) -> bool:
    return bool(identifier) and cprnum.is_valid_form(identifier) and not cprnum.is_substitute(
        identifier)


class CprConnector(Connector):
    name = "cpr"

    def __init__(self, client: CprClient, store: StoreOrFactory, *,
                 batch_size: int = 100, refresh_hours: float = 24.0,
                 follow_relations: bool = True, concurrency: int = 4,
                 now: Callable[[], datetime] = _utcnow):
        self.client = client
        self._store = LazyStore(store)
        self.batch_size = batch_size
        self.refresh_interval = timedelta(hours=refresh_hours)
        self.follow_relations = follow_relations
        self.concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self.now = now

    @property
    def store(self) -> EventStore:
        """The store the persons come from (opened on first use when given as a factory)."""
        return self._store.get()

    def check(self) -> None:
        """A lookup of a number no one has (a syntactically valid substitute-range number):
        answered with PERSON_NOT_FOUND when the service is up and accepts us."""
        with contextlib.suppress(PersonNotFound):
            self.client.lookup("6101010000")

    def streams(self) -> list[Stream]:
        return [PersonsStream(self), RefreshStream(self)]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.client.close()
        self._store.close()

    # --- one batch of lookups -------------------------------------------------------------

    def lookup_batch(self, pnrs: list[str], seen: set[str], cursor: str, *,
                     follow: bool) -> Batch:
        """Look each person up and diff; with ``follow``, their related persons too.

        The calls of one wave run ``concurrency`` at a time; folding and diffing against the
        store stay in this thread."""
        events: list[ev.CanonicalEvent] = []
        dead: list[DeadLetter] = []
        wave = list(pnrs)
        while wave:
            next_wave: list[str] = []
            for pnr, outcome in zip(wave, self._fetch_all(wave), strict=True):
                record = self._apply(pnr, outcome, events, dead)
                if record is None or not follow:
                    continue
                for _, other in record.relations:
                    if other not in seen and lookupable(other):
                        seen.add(other)
                        next_wave.append(other)
            wave = next_wave
        if dead:
            log.warning("cpr lookups dead-lettered", count=len(dead))
        return Batch(events=events, dead_letters=dead, cursor=cursor)

    def _fetch(self, pnr: str) -> PersonRecord | PersonNotFound | MalformedReply:
        try:
            return self.client.lookup(pnr)
        except (PersonNotFound, MalformedReply) as exc:
            return exc

    def _fetch_all(self, pnrs: list[str]) -> list:
        if self.concurrency <= 1 or len(pnrs) <= 1:
            return [self._fetch(p) for p in pnrs]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="cpr-lookup")
        return list(self._pool.map(self._fetch, pnrs))  # re-raises SourceUnavailable & co.

    def _apply(self, pnr: str, outcome, events: list, dead: list) -> PersonRecord | None:
        person_key = self.store.person_key(pnr)
        if isinstance(outcome, PersonNotFound | MalformedReply):
            # The number is inside the sealed raw record, never in the reason or the record id.
            raw = json.dumps({"pnr": pnr,
                              "reply": outcome.raw.decode("utf-8", "replace")}).encode()
            dead.append(DeadLetter(source_system=self.name, reason=str(outcome), raw=raw,
                                   source_record_id=f"{person_key}/lookup"))
            return None
        known = mapping.fold(self.store.person_stream(person_key), self.name)
        events.extend(mapping.diff(known, outcome, person_key=person_key,
                                   pseudonym=self.store.person_key, now=self.now()))
        return outcome


class PersonsStream(Stream):
    name = "persons"

    def __init__(self, connector: CprConnector):
        self.c = connector

    def read(self, cursor: str | None) -> Iterator[Batch]:
        after = int(cursor or 0)
        last = after
        seen: set[str] = set()
        pending: list[str] = []
        for e in self.c.store.iter_events(after=after, batch_size=2000):
            last = e.position or last
            if e.source_system == self.c.name or e.person in seen or not lookupable(e.person):
                continue
            seen.add(e.person)
            pending.append(e.person)
            if len(pending) >= self.c.batch_size:
                yield self.c.lookup_batch(pending, seen, str(last),
                                          follow=self.c.follow_relations)
                pending = []
        if pending or last != after:
            yield self.c.lookup_batch(pending, seen, str(last), follow=self.c.follow_relations)


class RefreshStream(Stream):
    name = "refresh"

    def __init__(self, connector: CprConnector):
        self.c = connector

    def read(self, cursor: str | None) -> Iterator[Batch]:
        now = self.c.now()
        if cursor is None:
            # The first pass: the persons stream has just looked everyone up.
            yield Batch(cursor=f"done|{now.isoformat()}")
            return
        kind, _, rest = cursor.partition("|")
        if kind == "done":
            if now - datetime.fromisoformat(rest) < self.c.refresh_interval:
                return
            started, after = now.isoformat(), 0
        elif kind == "sweep":
            started, _, pos = rest.rpartition("|")
            after = int(pos)
        else:
            raise SourceUnavailable(f"cpr: unreadable refresh cursor {cursor!r}")
        pending: list[str] = []
        seen: set[str] = set()
        last = after
        for e in self.c.store.iter_events(after=after, batch_size=2000,
                                          types=("PersonRegistered",)):
            last = e.position or last
            if e.source_system != self.c.name or e.person in seen or not e.person:
                continue
            seen.add(e.person)
            pending.append(e.person)
            if len(pending) >= self.c.batch_size:
                yield self.c.lookup_batch(pending, seen, f"sweep|{started}|{last}", follow=False)
                pending = []
        batch = self.c.lookup_batch(pending, seen, f"done|{self.c.now().isoformat()}",
                                    follow=False)
        yield batch


def from_settings(settings: Settings, store: EventStore | None = None) -> CprConnector:
    """The registry's factory: ``CPR_<KEY>`` env, ``CPR_<KEY>_FILE`` or ``[components.cpr]``."""
    def get(key: str, default=None):
        return settings.component("cpr", key, default)

    base_url = get("base_url")
    if not base_url:
        raise ConfigError("cpr: CPR_BASE_URL is not configured")
    agreement = get("service_agreement_uuid")
    if not agreement:
        raise ConfigError("cpr: CPR_SERVICE_AGREEMENT_UUID is not configured")
    context = InvocationContext(
        service_agreement_uuid=agreement,
        user_system_uuid=get("user_system_uuid", "00000000-0000-0000-0000-000000000000"),
        user_uuid=get("user_uuid", "00000000-0000-0000-0000-000000000000"),
        service_uuid=get("service_uuid", "00000000-0000-0000-0000-000000000000"),
        accounting_info=get("accounting_info"))
    cert, key = get("cert_file"), get("key_file")
    if bool(cert) != bool(key):
        raise ConfigError("cpr: CPR_CERT_FILE and CPR_KEY_FILE go together")
    client = CprClient(
        base_url, context, timeout=float(get("timeout", 30)),
        retry=RetryPolicy(attempts=int(get("retry_attempts", 3)),
                          initial=float(get("retry_initial", 0.2))),
        service_path=get("service_path", "/service/CPR/PersonBaseDataExtended/5"),
        cert=(cert, key) if cert else None, verify=get("ca_file") or True)
    return CprConnector(
        client, store_or_opener(settings, store),
        batch_size=int(get("batch_size", 100)), concurrency=int(get("concurrency", 4)),
        refresh_hours=float(get("refresh_hours", 24)),
        follow_relations=str(get("follow_relations", "true")).lower() not in
        ("0", "false", "no", "off"))
