"""The Fasit connector: two streams over the jobcentre backend's queries, in this order.

- ``citizens``: a sweep of every citizen Fasit knows: ``getcases`` (status and caseworker changes,
  found by diffing against the store as for DUBU), journal notes newer than the cursor's
  ``eventDate`` (less an overlap, newest first), and person-group markings. Expensive (three
  requests per citizen): with ``FASIT_SWEEP_INTERVAL_S`` it runs only that often.
- ``cases``: new cases, incrementally and cheaply: ``/api/search`` with ``Cases.CreatedOn gt
  <cursor>`` (less an overlap), then ``getcases`` for each citizen found.
Both streams diff cases against the same ``KnownCases``, so a case found by both is recorded once.
See docs/connectors/fasit.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from connectors.fasit.client import BearerToken, FasitClient
from connectors.fasit.dates import parse_timestamp, timestamp_to_wire
from connectors.fasit.mapping import (
    SOURCE_SYSTEM,
    Malformed,
    cpr_of,
    marking_events,
    note_event,
    to_snapshot,
)
from connectors.http import RetryPolicy
from connectors.snapshot import KnownCases, KnownCasesSource, diff_case
from connectors.stores import StoreOrFactory, store_or_opener
from hub.config import ConfigError, Settings
from hub.domain import events as ev
from hub.ingest.connector import Batch, Connector, Stream
from hub.ingest.validate import LOCAL_TZ
from hub.store.contract import DeadLetter
from hub.store.eventstore import EventStore


@dataclass(frozen=True)
class FasitConfig:
    base_url: str
    tenant: str
    token_url: str | None = None
    client_id: str = ""
    client_secret: str = ""
    token: str | None = None
    created_overlap: timedelta = timedelta(minutes=10)
    journal_overlap: timedelta = timedelta(days=30)
    journal_full_interval: timedelta = timedelta(days=7)
    sweep_interval: timedelta = timedelta(0)
    page_size: int = 250
    timeout: float = 30.0
    verify: bool = True
    retry: RetryPolicy = RetryPolicy()

    @classmethod
    def from_settings(cls, settings: Settings) -> FasitConfig:
        def get(key: str, default: Any = None) -> Any:
            return settings.component("fasit", key, default)

        base_url, tenant = get("base_url"), get("tenant")
        if not base_url or not tenant:
            raise ConfigError("Fasit needs FASIT_BASE_URL and FASIT_TENANT")
        token, token_url = get("token"), get("token_url")
        if not token and not token_url:
            raise ConfigError("Fasit needs FASIT_TOKEN (or _FILE), or FASIT_TOKEN_URL with "
                              "FASIT_CLIENT_ID and FASIT_CLIENT_SECRET (or _FILE)")
        return cls(base_url=base_url, tenant=tenant, token_url=token_url,
                   client_id=get("client_id", ""), client_secret=get("client_secret", ""),
                   token=token,
                   created_overlap=timedelta(seconds=float(get("created_overlap_s", 600))),
                   journal_overlap=timedelta(days=float(get("journal_overlap_days", 30))),
                   journal_full_interval=timedelta(
                       days=float(get("journal_full_interval_days", 7))),
                   sweep_interval=timedelta(seconds=float(get("sweep_interval_s", 0))),
                   page_size=int(get("page_size", 250)), timeout=float(get("timeout", 30)),
                   verify=str(get("verify_tls", "true")).lower() not in ("0", "false", "no"),
                   retry=RetryPolicy(attempts=int(get("retry_attempts", 3)),
                                     initial=float(get("retry_initial", 0.5))))


class _Pass:
    """What the streams of one pass share: the store's knowledge, and the bad records already
    dead-lettered in this pass (both streams read the same cases)."""

    def __init__(self, known: KnownCases):
        self.known = known
        self.reported: set[bytes] = set()


class _Citizen:
    """What one page of citizens contributes: cases diffed against the store, notes, markings."""

    def __init__(self, client: FasitClient, run: _Pass, now: datetime):
        self.client = client
        self.known = run.known
        self.run = run
        self.now = now
        self.events: list[ev.CanonicalEvent] = []
        self.dead: list[DeadLetter] = []

    def _dead(self, record: Any, reason: str, record_id: str | None) -> None:
        raw = orjson.dumps(record, default=str)
        if raw not in self.run.reported:
            self.run.reported.add(raw)
            self.dead.append(DeadLetter(source_system=SOURCE_SYSTEM, reason=f"fasit: {reason}",
                                        raw=raw, source_record_id=record_id))

    def person(self, row: Any) -> tuple[str, str] | None:
        cid = row.get("CitizenId") if isinstance(row, dict) else None
        try:
            if not isinstance(cid, str) or not cid:
                raise Malformed("CitizenId is missing")
            return cid, cpr_of(row.get("CitizenCprFormatted"))
        except Malformed as exc:
            self._dead(row, str(exc), f"Citizen/{cid}" if cid else None)
            return None

    def cases(self, cid: str, cpr: str, created_after: datetime | None = None
              ) -> datetime | None:
        newest = None
        for raw in self.client.cases(cid):
            try:
                snap = to_snapshot(raw, cpr)
            except Malformed as exc:
                rid = raw.get("caseId") if isinstance(raw, dict) else None
                self._dead(raw, str(exc), f"Case/{rid}" if rid else None)
                continue
            newest = max(newest or snap.opened_at, snap.opened_at)
            if created_after is not None and snap.opened_at <= created_after:
                continue
            self.events.extend(diff_case(SOURCE_SYSTEM, snap, self.known.get(snap.case_key),
                                         self.now))
        return newest

    def notes(self, cid: str, cpr: str, after: str | None) -> str | None:
        newest = None
        for raw in self.client.journal_notes(cid, after):
            try:
                e = note_event(raw, cpr)
            except Malformed as exc:
                self._dead(raw, str(exc), None)
                continue
            self.events.append(e)
            stamp = timestamp_to_wire(e.occurred_at)
            newest = max(newest or stamp, stamp)
        return newest

    def markings(self, cid: str, cpr: str) -> None:
        today = self.now.astimezone(LOCAL_TZ).date()
        for raw in self.client.markings(cid):
            try:
                self.events.extend(marking_events(raw, cpr, today))
            except Malformed as exc:
                self._dead(raw, str(exc), None)


class CasesStream(Stream):
    """Cursor ``{"since", "page", "newest"}``: the search ``Cases.CreatedOn gt since`` is read
    page by page (a restart resumes at ``page``); when it is done, ``since`` becomes the newest
    ``createdOn`` seen. Without a cursor, ``since`` is the newest Fasit case the store knows
    (the ``citizens`` sweep, which runs first, has loaded the rest)."""

    name = "cases"

    def __init__(self, client: FasitClient, config: FasitConfig, run: _Pass,
                 now: Callable[[], datetime]):
        self.client, self.config, self.run, self.now = client, config, run, now

    def read(self, cursor: str | None) -> Iterator[Batch]:
        self.run.known.catch_up()
        state = orjson.loads(cursor) if cursor else {}
        if not cursor and self.run.known.newest_opened is not None:
            state = {"since": timestamp_to_wire(self.run.known.newest_opened)}
        since, newest = state.get("since"), state.get("newest") or state.get("since")
        after = parse_timestamp(since) - self.config.created_overlap if since else None
        rules = ([{"field": "Cases.CreatedOn", "operator": "gt",
                   "value": timestamp_to_wire(after)}] if after else [])
        pages = self.client.search_rows(rules, int(state.get("page", 1)), self.config.page_size)
        for number, rows, last in pages:
            work = _Citizen(self.client, self.run, self.now())
            for row in rows:
                who = work.person(row)
                if who:
                    seen = work.cases(*who, created_after=after)
                    stamp = timestamp_to_wire(seen) if seen else None
                    if stamp and (newest is None or stamp > newest):
                        newest = stamp
            state = ({"since": newest, "page": 1, "newest": newest} if last
                     else {"since": since, "page": number + 1, "newest": newest})
            yield Batch(work.events, work.dead, orjson.dumps(state).decode())


class CitizensStream(Stream):
    """Cursor ``{"page", "journal_after", "journal_max", "swept_at", "full", "full_at"}``: the
    sweep's next search page, the journal high-water mark (``eventDate``) that the next sweep
    reads back from, when the last sweep finished (a new one starts ``sweep_interval`` after
    it), whether the sweep under way reads every journal note, and when the last such sweep
    finished.

    Fasit sorts journal notes by ``eventDate`` only, so a note back-dated further than
    ``journal_overlap`` is below the high-water mark when it is written. A sweep every
    ``journal_full_interval`` therefore reads every note (the store drops those it holds):
    such a note arrives at the latest that much later."""

    name = "citizens"

    def __init__(self, client: FasitClient, config: FasitConfig, run: _Pass,
                 now: Callable[[], datetime]):
        self.client, self.config, self.run, self.now = client, config, run, now

    def _full_due(self, state: dict[str, Any]) -> bool:
        full_at = state.get("full_at")
        interval = self.config.journal_full_interval
        return not state.get("journal_after") or bool(interval) and (
            not full_at or self.now() - parse_timestamp(full_at) >= interval)

    def read(self, cursor: str | None) -> Iterator[Batch]:
        self.run.known.catch_up()
        state = orjson.loads(cursor) if cursor else {}
        swept_at = state.get("swept_at")
        first_page = int(state.get("page", 1)) == 1
        if (first_page and swept_at and self.config.sweep_interval
                and self.now() - parse_timestamp(swept_at) < self.config.sweep_interval):
            return  # not due: the ``cases`` stream keeps new cases coming meanwhile
        full = self._full_due(state) if first_page else bool(state.get("full"))
        full_at = state.get("full_at")
        journal_after = state.get("journal_after")
        journal_max = state.get("journal_max") or journal_after
        after = (timestamp_to_wire(parse_timestamp(journal_after) - self.config.journal_overlap)
                 if journal_after and not full else None)
        pages = self.client.search_rows([], int(state.get("page", 1)), self.config.page_size)
        for number, rows, last in pages:
            work = _Citizen(self.client, self.run, self.now())
            for row in rows:
                who = work.person(row)
                if who:
                    work.cases(*who)
                    newest = work.notes(*who, after)
                    if newest and (journal_max is None or newest > journal_max):
                        journal_max = newest
                    work.markings(*who)
            done = timestamp_to_wire(self.now())
            state = ({"page": 1, "journal_after": journal_max, "journal_max": journal_max,
                      "swept_at": done, "full": False, "full_at": done if full else full_at}
                     if last else {"page": number + 1, "journal_after": journal_after,
                                   "journal_max": journal_max, "swept_at": swept_at,
                                   "full": full, "full_at": full_at})
            yield Batch(work.events, work.dead, orjson.dumps(state).decode())


class FasitConnector(Connector):
    name = SOURCE_SYSTEM

    def __init__(self, config: FasitConfig, store: StoreOrFactory,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.config = config
        self.now = now
        self.client = FasitClient(
            base_url=config.base_url, timeout=config.timeout, verify=config.verify,
            retry=config.retry, headers={"X-Tenant": config.tenant},
            auth=BearerToken(config.token_url, config.client_id, config.client_secret,
                             token=config.token))
        self._known_cases = KnownCasesSource(store, SOURCE_SYSTEM)

    def known(self) -> KnownCases:
        return self._known_cases.get()

    def check(self) -> None:
        self.client.person_groups()
        self.client.search([], 1, 1)

    def streams(self) -> list[Stream]:
        run = _Pass(self.known())
        return [CitizensStream(self.client, self.config, run, self.now),
                CasesStream(self.client, self.config, run, self.now)]

    def close(self) -> None:
        self.client.close()
        self._known_cases.close()


def from_settings(settings: Settings, store: EventStore | None = None) -> FasitConnector:
    """The registry's factory (see ``connectors.dubu.connector.from_settings`` on the store)."""
    return FasitConnector(FasitConfig.from_settings(settings),
                          store_or_opener(settings, store))
