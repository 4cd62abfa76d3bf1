"""The DUBU connector: one stream, ``sag``, a snapshot sweep diffed against the store.

DUBU has no change feed and no change stamp. Each pass sweeps every case in two parts selected
by ``$filter`` on status (active cases first, then the closed ones), ``$top`` cases per page in
``id`` order, and diffs each case against ``KnownCases`` (what the store already holds for
``dubu``). Activities are fetched per case, except for a case the store already knows as closed
and that is still closed. The cursor (``{"part": ..., "skip": ...}``) lets a restart resume the
sweep where it stopped; correctness never depends on it, because the diff is against the store.
See docs/connectors/dubu.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from connectors.dubu.client import ACTIVE_FILTER, INACTIVE_FILTER, DubuClient, SessionLogin
from connectors.dubu.mapping import (
    SOURCE_SYSTEM,
    STATUSES,
    Malformed,
    case_key,
    sag_id_of,
    sag_record_id,
    to_action,
    to_snapshot,
)
from connectors.http import RetryPolicy
from connectors.snapshot import INACTIVE, KnownCases, KnownCasesSource, diff_case
from connectors.stores import StoreOrFactory, store_or_opener
from hub.config import ConfigError, Settings
from hub.domain import events as ev
from hub.ingest.connector import Batch, Connector, Stream
from hub.logging import get_logger
from hub.store.contract import DeadLetter
from hub.store.eventstore import EventStore

log = get_logger("glasplade.connectors.dubu")

PARTS = (("active", ACTIVE_FILTER), ("inactive", INACTIVE_FILTER))


@dataclass(frozen=True)
class DubuConfig:
    base_url: str
    username: str = ""
    password: str = ""
    idp: str = ""
    session_cookie: str | None = None
    session_ttl: float = 900.0
    page_size: int = 100
    department: str = "BUF"
    extra_filter: str | None = None
    timeout: float = 30.0
    verify: bool = True
    retry: RetryPolicy = RetryPolicy()
    user_agent: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> DubuConfig:
        def get(key: str, default: Any = None) -> Any:
            return settings.component("dubu", key, default)

        base_url = get("base_url")
        if not base_url:
            raise ConfigError("DUBU_BASE_URL is not set")
        cookie = get("session_cookie")
        username, password = get("username", ""), get("password", "")
        if not cookie and not (username and password):
            raise ConfigError("DUBU needs DUBU_USERNAME and DUBU_PASSWORD (or _FILE), or "
                              "DUBU_SESSION_COOKIE (or _FILE) from a browser login")
        return cls(base_url=base_url, username=username, password=password,
                   idp=get("idp", ""), session_cookie=cookie,
                   session_ttl=float(get("session_ttl", 900)),
                   page_size=int(get("page_size", 100)), department=get("department", "BUF"),
                   extra_filter=get("filter"), timeout=float(get("timeout", 30)),
                   verify=str(get("verify_tls", "true")).lower() not in ("0", "false", "no"),
                   retry=RetryPolicy(attempts=int(get("retry_attempts", 3)),
                                     initial=float(get("retry_initial", 0.5))),
                   user_agent=get("user_agent"))


def _cursor(part: str, skip: int) -> str:
    return orjson.dumps({"part": part, "skip": skip}).decode()


def _parse_cursor(cursor: str | None) -> tuple[int, int]:
    """(index into PARTS, skip); anything unreadable starts a fresh sweep."""
    if not cursor:
        return 0, 0
    try:
        d = orjson.loads(cursor)
        part = [p for p, _ in PARTS].index(d["part"])
        return part, max(0, int(d["skip"]))
    except (ValueError, KeyError, TypeError):
        return 0, 0


class SagStream(Stream):
    name = "sag"

    def __init__(self, client: DubuClient, config: DubuConfig, known: Callable[[], KnownCases],
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.client = client
        self.config = config
        self.known = known
        self.now = now

    def read(self, cursor: str | None) -> Iterator[Batch]:
        known = self.known()
        known.catch_up()  # everything committed so far, including earlier passes' batches
        part, skip = _parse_cursor(cursor)
        seen: set[str] = set()
        for index in range(part, len(PARTS)):
            name, status_filter = PARTS[index]
            query = (f"({status_filter}) and ({self.config.extra_filter})"
                     if self.config.extra_filter else status_filter)
            while True:
                page = self.client.sag_page(skip, self.config.page_size, query)
                rows = page["value"]
                events, dead = self._page(rows, known, seen)
                skip += len(rows)
                # (a service that leaves out ``@odata.count`` ends a part on a short page)
                count = page.get("@odata.count")
                last = len(rows) < self.config.page_size or (
                    count is not None and skip >= int(count))
                if not last:
                    yield Batch(events, dead, _cursor(name, skip))
                    continue
                following = index + 1 < len(PARTS)
                yield Batch(events, dead, _cursor(PARTS[index + 1][0] if following
                                                  else PARTS[0][0], 0))
                skip = 0
                break

    def _page(self, rows: list[Any], known: KnownCases, seen: set[str]
              ) -> tuple[list[ev.CanonicalEvent], list[DeadLetter]]:
        events: list[ev.CanonicalEvent] = []
        dead: list[DeadLetter] = []
        detected_at = self.now()
        for record in rows:
            try:
                sag_id = sag_id_of(record)
            except Malformed as exc:
                dead.append(_dead(record, str(exc), None))
                continue
            if sag_id in seen:  # paging shifted under us: each case once per sweep
                continue
            seen.add(sag_id)
            try:
                snap = to_snapshot(record, [], self.config.department, detected_at)
            except Malformed as exc:
                dead.append(_dead(record, str(exc), sag_record_id(sag_id)))
                continue
            state = known.get(snap.case_key)
            if state is None or snap.status not in INACTIVE or state.status not in INACTIVE:
                actions = []
                for raw in self.client.activities(sag_id):
                    try:
                        actions.append(to_action(raw))
                    except Malformed as exc:
                        dead.append(_dead(raw, str(exc), f"{sag_record_id(sag_id)}/Aktivitet"))
                snap = dataclasses.replace(snap, actions=tuple(actions))
            events.extend(diff_case(SOURCE_SYSTEM, snap, state, detected_at))
        return events, dead


def _dead(record: Any, reason: str, record_id: str | None) -> DeadLetter:
    return DeadLetter(source_system=SOURCE_SYSTEM, reason=f"dubu: {reason}",
                      raw=orjson.dumps(record, default=str), source_record_id=record_id)


class DubuConnector(Connector):
    name = SOURCE_SYSTEM

    def __init__(self, config: DubuConfig, store: StoreOrFactory):
        self.config = config
        self.client = DubuClient(
            base_url=config.base_url, timeout=config.timeout, verify=config.verify,
            retry=config.retry,
            headers={"User-Agent": config.user_agent} if config.user_agent else {},
            auth=SessionLogin(config.username, config.password, config.idp,
                              cookie=config.session_cookie, ttl=config.session_ttl))
        self._known_cases = KnownCasesSource(store, SOURCE_SYSTEM)

    def known(self) -> KnownCases:
        return self._known_cases.get()

    def check(self) -> None:
        self.client.current_user()
        self.client.sag_page(0, 1)

    def streams(self) -> list[Stream]:
        return [SagStream(self.client, self.config, self.known)]

    def close(self) -> None:
        self.client.close()
        self._known_cases.close()


def from_settings(settings: Settings, store: EventStore | None = None) -> DubuConnector:
    """The registry's factory. The sweep diffs against the store: given one, it reads that;
    otherwise it opens its own read connection to ``settings.store_url`` on first use."""
    return DubuConnector(DubuConfig.from_settings(settings),
                         store_or_opener(settings, store))


__all__ = ["DubuConfig", "DubuConnector", "SagStream", "STATUSES", "case_key", "from_settings"]
