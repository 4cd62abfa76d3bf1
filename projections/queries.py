"""Read-model queries for the API, the dashboard and the CLI: typed, frozen results.

Every function takes an open ``sa.Connection`` to the read-model database (``projections.db.
readmodel_engine``) and does index lookups only (by person_key, case_key, address_id, a name
prefix, user_id). These functions do no access control and log nothing: the caller applies
the access policy and records the PersonRecordAccessed event.

Addresses of persons with name and address protection (``protected_address``) are left out
(``address`` None, ``address_hidden`` True) unless the caller passes ``reveal_protected=True``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from projections import access_log as al
from projections import case_history as ch
from projections import citizen_tables as t
from projections import overview_sql as sql
from projections.results import (  # noqa: F401 - re-exported: the query results
    AccessEntry,
    AddressView,
    CaseView,
    CaseworkerView,
    CitizenOverview,
    ConsentView,
    GrantView,
    HouseholdMember,
    HouseholdOverview,
    MarkingView,
    PathwayView,
    PersonSummary,
    SystemFlag,
    TimelineEntry,
)

#: Relation as seen from the other side ("A is B's parent" = "B is A's child").
INVERSE = {"parent": "child", "child": "parent", "spouse": "spouse",
           "co_resident": "co_resident", "custody_holder": "in_custody"}
ADULT_AGE = 18


# --- helpers --------------------------------------------------------------------------------


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else (value.replace(tzinfo=UTC) if value.tzinfo is None
                                       else value.astimezone(UTC))


def _today(today: date | None) -> date:
    return today or datetime.now(UTC).date()


def resolve_key(conn: sa.Connection, person_key: str) -> str:
    """The current key of a person whose identifier was replaced (else the key itself)."""
    new = conn.execute(sa.select(t.aliases.c.new_key)
                       .where(t.aliases.c.old_key == person_key)).scalar()
    return new or person_key


def _person_row(conn: sa.Connection, person_key: str) -> Any:
    """The person's row by key, or by the key that replaced it (one lookup in the usual case)."""
    p = t.persons
    row = conn.execute(sa.select(p).where(p.c.person_key == person_key)).first()
    if row is None:
        new = resolve_key(conn, person_key)
        if new != person_key:
            row = conn.execute(sa.select(p).where(p.c.person_key == new)).first()
    return row


def _summary(m: Any, reveal_protected: bool) -> PersonSummary:
    hidden = bool(m["protected_address"]) and not reveal_protected
    address = None
    if not hidden and (m["street"] or m["address_id"]):
        address = AddressView(m["street"], m["house_number"], m["floor"], m["door"],
                              m["postcode"], m["city"], m["municipality_code"], m["address_id"])
    return PersonSummary(
        person_key=m["person_key"], cpr=m["cpr"], registered=bool(m["registered"]),
        first_name=m["first_name"], last_name=m["last_name"], birth_date=m["birth_date"],
        sex=m["sex"], civil_status=m["civil_status"],
        protected_address=bool(m["protected_address"]), address=address,
        address_hidden=hidden and bool(m["street"] or m["address_id"]),
        died_on=m["died_on"], emigrated=bool(m["emigrated"]))


def person_summary(conn: sa.Connection, person_key: str, *, reveal_protected: bool = False
                   ) -> PersonSummary | None:
    row = _person_row(conn, person_key)
    return _summary(row._mapping, reveal_protected) if row else None


def _cw(m: Any) -> CaseworkerView:
    return CaseworkerView(m["caseworker_id"], m["name"], m["unit_id"], m["role"], m["contact"])


def _cases(found_rows: list[dict[str, Any]]) -> tuple[CaseView, ...]:
    """CaseViews from ``overview_sql.cases_statement`` rows (one per assignment)."""
    found: dict[str, tuple[dict[str, Any], list[CaseworkerView]]] = {}
    for m in found_rows:
        entry = found.setdefault(m["case_key"], (m, []))
        if m["caseworker_id"] is not None:
            entry[1].append(CaseworkerView(m["caseworker_id"], m["cw_name"], m["cw_unit_id"],
                                           m["role"], m["contact"]))
    out = []
    for m, workers in found.values():
        ws = tuple(workers)
        primary = next((x for x in ws if x.role == "primary"), None)
        out.append(CaseView(
            case_key=m["case_key"], person_key=m["person_key"], source_system=m["source_system"],
            department=m["department"], unit_id=m["unit_id"], unit_name=m["unit_name"],
            case_type=m["case_type"], title=m["title"], status=m["status"], law=m["law"],
            paragraph=m["paragraph"], legal_basis_valid_from=m["legal_basis_valid_from"],
            opened_at=_aware(m["opened_at"]), closed_at=_aware(m["closed_at"]),
            last_event_at=_aware(m["last_event_at"]), primary_caseworker=primary,
            caseworkers=ws))
    return tuple(out)


def _active_period(start: date | None, end: date | None, ended: date | None, today: date) -> bool:
    if start is not None and start > today:
        return False
    for stop in (end, ended):
        if stop is not None and stop < today:
            return False
    return ended is None or ended > today


def _household(key: str, address_id: str | None, relations: list[dict[str, Any]],
               persons: list[dict[str, Any]], reveal_protected: bool,
               subject_protected: bool = False) -> tuple[HouseholdMember, ...]:
    rel: dict[str, str] = {}
    inverse: list[tuple[str, str]] = []
    for r in relations:
        if r["person_key"] == key:
            rel[r["related_key"]] = r["relation"]
        else:
            inverse.append((r["person_key"], INVERSE.get(r["relation"], r["relation"])))
    for other, relation in inverse:
        rel.setdefault(other, relation)
    members = []
    for m in persons:
        if m["person_key"] == key:
            continue
        same = address_id is not None and m["address_id"] == address_id
        if same and not reveal_protected and (subject_protected or m["protected_address"]):
            if rel.get(m["person_key"]) is None:
                continue  # known only by living at a protected address
            same = False
            if subject_protected:  # their address is the subject's protected one
                m = {**m, "protected_address": True}
        members.append(HouseholdMember(_summary(m, reveal_protected), rel.get(m["person_key"]),
                                       same))
    members.sort(key=lambda m: (m.person.birth_date or date.min, m.person.person_key))
    return tuple(members)


def _is_child(m: HouseholdMember, person: PersonSummary, today: date) -> bool:
    if m.relation == "child":
        return True
    age, own = m.person.age(today), person.age(today)
    return (m.relation is None and m.same_address and age is not None and age < ADULT_AGE
            and own is not None and own >= ADULT_AGE)


# --- the overview ---------------------------------------------------------------------------


def citizen_overview(conn: sa.Connection, person_key: str, *, today: date | None = None,
                     reveal_protected: bool = False) -> CitizenOverview | None:
    """Everything the glasplade shows for one person, or None if the person is unknown.
    One round trip on PostgreSQL (``overview_sql.fetch``)."""
    day = _today(today)
    found = sql.fetch(conn, person_key)
    if not found["person"]:
        new = resolve_key(conn, person_key)
        if new == person_key:
            return None
        found = sql.fetch(conn, new)
        if not found["person"]:
            return None
    row = found["person"][0]
    key = row["person_key"]
    person = _summary(row, reveal_protected)
    household = _household(key, row["address_id"], found["relations"], found["household"],
                           reveal_protected, bool(row["protected_address"]))
    cases = _cases(found["cases"])
    grants = tuple(
        GrantView(m["grant_key"], m["grant_id"], m["source_system"], m["case_key"], m["kind"],
                  m["law"], m["paragraph"], m["title"], m["granting_unit_id"],
                  m["granting_unit_name"], m["valid_from"], m["valid_to"], m["extent"],
                  m["hours_per_week"], m["monthly_rate"], m["ended_on"],
                  _active_period(m["valid_from"], m["valid_to"], m["ended_on"], day))
        for m in found["grants"])
    consents = tuple(
        ConsentView(m["consent_id"], m["purpose"], tuple(m["unit_ids"] or ()), m["valid_from"],
                    m["valid_until"], _aware(m["withdrawn_at"]),
                    m["withdrawn_at"] is None
                    and _active_period(m["valid_from"], m["valid_until"], None, day))
        for m in found["consents"])
    markings = tuple(
        MarkingView(m["marking_key"], m["marking_id"], m["system"], m["marking_type"],
                    m["valid_from"], m["valid_to"], m["ended_on"], m["note"],
                    _active_period(m["valid_from"], m["valid_to"], m["ended_on"], day))
        for m in found["markings"])
    return CitizenOverview(
        person=person, household=household,
        children=tuple(m for m in household if _is_child(m, person, day)),
        cases=cases, grants=grants, consents=consents, markings=markings,
        pathways=_pathways(found["pathways"]), systems=_flags(cases), as_of=day)


def _flags(cases: tuple[CaseView, ...]) -> tuple[SystemFlag, ...]:
    counts: dict[tuple[str, str | None], list[int]] = {}
    for c in cases:
        n = counts.setdefault((c.source_system or "", c.department), [0, 0])
        n[0] += c.active
        n[1] += 1
    return tuple(SystemFlag(s, d, a, n) for (s, d), (a, n) in sorted(
        counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")))


def _pathways(found_rows: list[dict[str, Any]]) -> tuple[PathwayView, ...]:
    found: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for r in found_rows:
        found.setdefault(r["pathway_id"], (r, []))[1].append(r["member"])
    out = []
    for m, members in found.values():
        tov = (CaseworkerView(m["tovholder_id"], m["tovholder_name"], m["tovholder_unit_id"],
                              "tovholder", None) if m["tovholder_id"] else None)
        out.append(PathwayView(
            m["pathway_id"], m["person_key"], m["anchor_unit_id"], m["anchor_unit_name"],
            m["rule_id"], m["status"], _aware(m["started_at"]), _aware(m["closed_at"]),
            m["close_reason"], tov, tuple(members), m["meetings"], _aware(m["last_meeting_at"]),
            m["last_meeting_type"], m["plan_summary"], m["progression"]))
    out.sort(key=lambda x: (x.started_at or datetime.min.replace(tzinfo=UTC)), reverse=True)
    return tuple(out)


def pathways_of(conn: sa.Connection, person_key: str) -> tuple[PathwayView, ...]:
    """Coordinated pathways the person is a member of (newest first)."""
    return _pathways(sql.rows(conn, sql.STATEMENTS["pathways"], {sql.KEY: person_key}))


def household_overview(conn: sa.Connection, person_key: str, *, today: date | None = None,
                       reveal_protected: bool = False) -> HouseholdOverview | None:
    """The family: the person, the others at the address and related persons, each in full."""
    day = _today(today)
    first = citizen_overview(conn, person_key, today=day, reveal_protected=reveal_protected)
    if first is None:
        return None
    adults, children = [], []
    for m in first.household:
        o = citizen_overview(conn, m.person.person_key, today=day,
                             reveal_protected=reveal_protected)
        if o is not None:
            (children if _is_child(m, first.person, day) else adults).append(o)
    return HouseholdOverview(first.person.person_key, first.person.address,
                             (first, *adults, *children))


def case_view(conn: sa.Connection, case_key: str) -> CaseView | None:
    found = _cases(sql.rows(conn, sql.cases_statement(t.cases.c.case_key == case_key)))
    return found[0] if found else None


# --- search ---------------------------------------------------------------------------------


def search_by_cpr(conn: sa.Connection, person_key_of: Any, cpr: str, *,
                  reveal_protected: bool = False) -> list[PersonSummary]:
    """Find a person by CPR (``person_key_of`` is the store's pseudonymizer, e.g.
    ``store.person_key``); accepts ``ddmmyy-xxxx`` and ``ddmmyyxxxx``."""
    digits = cpr.strip().replace("-", "").replace(" ", "")
    if not digits:
        return []
    found = person_summary(conn, person_key_of(digits), reveal_protected=reveal_protected)
    return [found] if found else []


def search_by_name(conn: sa.Connection, text: str, *, limit: int = 20,
                   reveal_protected: bool = False) -> list[PersonSummary]:
    """Persons whose "first last" or "last first" name starts with ``text`` (index range)."""
    prefix = t.normalize_name(text)
    if not prefix:
        return []
    upper = prefix + "\U0010ffff"
    p = t.persons
    rows = conn.execute(
        sa.select(p).where(p.c.name_search >= prefix, p.c.name_search < upper).limit(limit)
    ).all() + conn.execute(
        sa.select(p).where(p.c.last_name_search >= prefix, p.c.last_name_search < upper)
        .limit(limit)).all()
    seen: dict[str, PersonSummary] = {}
    for r in rows:
        seen.setdefault(r.person_key, _summary(r._mapping, reveal_protected))
    return sorted(seen.values(), key=lambda s: (s.last_name or "", s.first_name or "",
                                                s.person_key))[:limit]


# --- case history and access log ------------------------------------------------------------


def case_history(conn: sa.Connection, case_key: str, *, limit: int | None = None
                 ) -> list[TimelineEntry]:
    """A case's timeline in business-time order (ties by store position)."""
    e = ch.entries
    q = sa.select(e).where(e.c.case_key == case_key).order_by(e.c.occurred_at, e.c.position)
    if limit:
        q = q.limit(limit)
    return [TimelineEntry(r.position, r.case_key, _aware(r.occurred_at), _aware(r.recorded_at),
                          r.source_system, r.actor, r.event_type, r.summary,
                          orjson.loads(r.details))
            for r in conn.execute(q)]


def _accesses(conn: sa.Connection, where: sa.ColumnElement[bool], limit: int,
              before: datetime | None) -> list[AccessEntry]:
    e = al.entries
    q = sa.select(e).where(where)
    if before is not None:
        q = q.where(e.c.occurred_at < before)
    q = q.order_by(e.c.occurred_at.desc(), e.c.position.desc()).limit(limit)
    return [AccessEntry(r.position, r.person_key, r.user_id, r.purpose, r.view, r.access,
                        _aware(r.occurred_at), _aware(r.recorded_at)) for r in conn.execute(q)]


def accesses_to_person(conn: sa.Connection, person_key: str, *, limit: int = 100,
                       before: datetime | None = None) -> list[AccessEntry]:
    """Who looked at this person (newest first); page with ``before``."""
    return _accesses(conn, al.entries.c.person_key == resolve_key(conn, person_key), limit,
                     before)


def accesses_by_user(conn: sa.Connection, user_id: str, *, limit: int = 100,
                     before: datetime | None = None) -> list[AccessEntry]:
    """Whom this user looked at (newest first); page with ``before``."""
    return _accesses(conn, al.entries.c.user_id == user_id, limit, before)
