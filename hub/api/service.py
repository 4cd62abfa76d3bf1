"""The application service of the API and the dashboard: read, filter by policy, record the view.

One place decides what a user sees (``hub.domain.access``) and records every view of a person as
a ``PersonRecordAccessed`` event, so the JSON API and the Danish pages cannot differ.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import sqlalchemy as sa

from hub.api import extra_queries
from hub.api.context import danish_today
from hub.api.errors import ApiError, forbidden, not_found
from hub.api.metrics import ApiMetrics
from hub.api.views import AccessEntry, CaseHistory, CaseView, ConsentView, Household, Overview
from hub.bootstrap import Hub
from hub.domain import events as ev
from hub.domain.access import AccessPolicy, CaseScope, ConsentFact, Decision, User
from hub.domain.cpr import is_valid_form
from hub.logging import get_logger
from projections import queries as q
from projections.db import readmodel_engine
from projections.registry import open_runner
from projections.runner import ProjectionRunner

log = get_logger("glasplade.api.service")
SOURCE = "glasplade"


@dataclass(frozen=True, slots=True)
class Access:
    """One view of one person, to be recorded."""

    person_key: str
    cpr: str | None
    view: str
    access: str
    others: tuple[str, ...] = ()
    """Person keys of the others the view showed (recorded in the same event)."""


class Glasplade:
    def __init__(self, hub: Hub, policy: AccessPolicy, *, metrics: ApiMetrics | None = None,
                 today: Callable[[], date] = danish_today, engine: sa.Engine | None = None):
        self.hub = hub
        self.store = hub.store
        self.policy = policy
        self.metrics = metrics
        self.today = today
        self._own_engine = engine is None and "readmodels" not in hub.extras
        self.engine: sa.Engine = (engine or hub.extras.get("readmodels")
                                  or readmodel_engine(hub.settings.effective_readmodel_url))

        self._runner: ProjectionRunner | None = None

    def close(self) -> None:
        if self._own_engine:
            self.engine.dispose()

    # --- projections (readiness, read-your-writes) ----------------------------------------

    @property
    def runner(self) -> ProjectionRunner:
        if self._runner is None:
            self._runner = open_runner(self.hub, engine=self.engine)
        return self._runner

    def projection_lags(self, head: int) -> dict[str, int | None]:
        """Events each registered projection is behind ``head``; None for one not built yet
        (its tables may not exist: the follower has not prepared it)."""
        stored = self.runner.positions()
        return {p.name: max(head - stored[p.name][1], 0) if p.name in stored else None
                for p in self.runner.projections}

    def catch_up(self, names: Sequence[str]) -> None:
        """Bring these projections up to the store's head now (the background runner does the
        same; whichever is first applies a batch, the other skips it)."""
        try:
            self.runner.run(names)
        except Exception as exc:  # not prepared yet, or busy: the page shows what there is
            log.warning("catch-up skipped", projections=list(names), error=type(exc).__name__)

    # --- capabilities (menu, buttons) -----------------------------------------------------

    def capable(self, user: User, capability: str | None) -> bool:
        checks = {"person": self.policy.may_see_person,
                  "access_log": self.policy.may_read_access_log,
                  "consent": self.policy.may_record_consent,
                  "operate": self.policy.may_operate}
        return capability is None or checks[capability](user)

    def purpose_label(self, purpose_id: str) -> str:
        return next((p.label for p in self.policy.purposes if p.purpose_id == purpose_id),
                    purpose_id)

    # --- recording views ------------------------------------------------------------------

    def record(self, user: User, purpose: str, accesses: Sequence[Access]) -> None:
        """Append one PersonRecordAccessed per person shown, in one transaction."""
        if not accesses:
            return
        now = datetime.now(UTC)
        self.store.append([ev.CanonicalEvent(
            event_id=uuid.uuid4(), source_system=SOURCE, source_record_id=str(uuid.uuid4()),
            source_version="1", occurred_at=now, person=a.cpr, person_key=a.person_key,
            actor=user.user_id,
            payload=ev.PersonRecordAccessed(user_id=user.user_id, purpose=purpose, view=a.view,
                                            access=a.access, others=a.others))
            for a in accesses])
        if self.metrics is not None:
            for a in accesses:
                self.metrics.person_views.labels(a.view, a.access).inc()

    def _require_person_rights(self, user: User, person_key: str, cpr: str | None,
                               purpose: str, view: str) -> None:
        if not self.policy.may_see_person(user):
            # A refused look is recorded too: the auditor sees attempts, not only views.
            self.record(user, purpose, [Access(person_key, cpr, view, "denied")])
            raise forbidden("your roles do not give access to citizens' data",
                            "Din rolle giver ikke adgang til borgeroplysninger.")

    # --- search ---------------------------------------------------------------------------

    def search(self, user: User, text: str, purpose: str | None = None,
               limit: int = 20) -> list[q.PersonSummary]:
        """By CPR (10 digits, with or without a dash) or by name prefix. Each hit is a view."""
        purpose = self.policy.purpose(purpose).purpose_id
        text = text.strip()
        digits = text.replace("-", "").replace(" ", "")
        if not (self.policy.may_see_person(user) or self.policy.may_read_access_log(user)):
            if digits.isdigit() and is_valid_form(digits):
                with self.engine.connect() as conn:
                    tried = q.search_by_cpr(conn, self.store.person_key, digits)
                self.record(user, purpose, [Access(h.person_key, h.cpr, "search", "denied")
                                            for h in tried])
            raise forbidden("your roles do not allow searching citizens",
                            "Din rolle giver ikke adgang til at søge borgere.")
        if len(text) < 2:
            raise ApiError(400, "query-too-short", "give a CPR number or at least two letters",
                           "Skriv et CPR-nummer eller mindst to bogstaver.")
        reveal = self.policy.may_see_protected_address(user)
        with self.engine.connect() as conn:
            if digits.isdigit():
                if not is_valid_form(digits):
                    raise ApiError(400, "bad-cpr", "not a CPR number: expected DDMMYY-XXXX",
                                   "Ugyldigt CPR-nummer (forventet DDMMÅÅ-XXXX).")
                hits = q.search_by_cpr(conn, self.store.person_key, digits,
                                       reveal_protected=reveal)
            else:
                hits = q.search_by_name(conn, text, limit=limit, reveal_protected=reveal)
        if not self.policy.may_see_person(user):  # an auditor finds whom, not where
            purpose = "audit"
            hits = [replace(h, address=None, address_hidden=h.address is not None
                            or h.address_hidden) for h in hits]
        self.record(user, purpose, [Access(h.person_key, h.cpr, "search", "summary")
                                    for h in hits])
        return hits

    # --- the overview ---------------------------------------------------------------------

    def _decide(self, user: User, cases: Iterable[q.CaseView], consents: list[ConsentFact],
                purpose: str) -> list[tuple[q.CaseView, Decision]]:
        day = self.today()
        return [(c, self.policy.case_decision(user, CaseScope(c.case_key, c.unit_id or ""),
                                              consents, purpose, day)) for c in cases]

    def _shown(self, o: q.CitizenOverview, user: User, purpose: str) -> Overview:
        facts = extra_queries.consent_facts(self.store, o.person.person_key)
        decided = self._decide(user, o.cases, facts, purpose)
        cases = tuple(_case_view(c, d) for c, d in decided if d.level != "none")
        open_cases = {c.case_key for c, d in decided if d.content}
        grants = tuple(g for g in o.grants if g.case_key in open_cases
                       or (g.case_key is None and g.granting_unit_id in user.units))
        day = self.today()
        consents = tuple(ConsentView(c.consent_id, c.purpose, self.purpose_label(c.purpose),
                                     c.unit_ids, c.valid_from, c.valid_until, c.state_on(day))
                         for c in facts)
        return Overview(
            person=o.person, purpose=purpose,
            access=self.policy.person_level(d for _, d in decided),
            household=o.household, children=o.children, cases=cases, grants=grants,
            hidden_grants=len(o.grants) - len(grants), consents=consents, markings=o.markings,
            pathways=tuple(p if self.policy.case_decision(
                user, CaseScope(f"pathway:{p.pathway_id}", p.anchor_unit_id or ""), facts,
                purpose, day).content else replace(p, plan_summary=None, progression=None)
                for p in o.pathways), systems=o.systems)

    def _find(self, conn: sa.Connection, person_key: str, reveal: bool) -> q.CitizenOverview:
        o = q.citizen_overview(conn, person_key, today=self.today(), reveal_protected=reveal)
        if o is None:
            raise not_found("person", "Borgeren")
        return o

    def overview(self, user: User, person_key: str, purpose: str | None = None) -> Overview:
        purpose = self.policy.purpose(purpose).purpose_id
        reveal = self.policy.may_see_protected_address(user)
        with self.engine.connect() as conn:
            o = self._find(conn, person_key, reveal)
        self._require_person_rights(user, o.person.person_key, o.person.cpr, purpose, "overview")
        shown = self._shown(o, user, purpose)
        # the household members it names (name, relation, birth date; CPR number and address
        # in the JSON) are views too: in the same event, filed under each by the access log
        self.record(user, purpose, [Access(
            o.person.person_key, o.person.cpr, "overview", shown.access,
            others=tuple(m.person.person_key for m in shown.household))])
        return shown

    def household(self, user: User, person_key: str, purpose: str | None = None) -> Household:
        purpose = self.policy.purpose(purpose).purpose_id
        reveal = self.policy.may_see_protected_address(user)
        with self.engine.connect() as conn:
            h = q.household_overview(conn, person_key, today=self.today(),
                                     reveal_protected=reveal)
        if h is None:
            raise not_found("person", "Borgeren")
        first = h.members[0].person
        self._require_person_rights(user, first.person_key, first.cpr, purpose, "household")
        members = tuple(self._shown(m, user, purpose) for m in h.members)
        # each member's event also names the relatives it shows who are not members (a parent
        # living elsewhere), as the overview's does its household
        keys = {m.person.person_key for m in members}
        self.record(user, purpose, [Access(
            m.person.person_key, m.person.cpr, "household", m.access,
            others=tuple(x.person.person_key for x in m.household
                         if x.person.person_key not in keys)) for m in members])
        return Household(h.person_key, purpose, members)

    # --- case history ---------------------------------------------------------------------

    def case_history(self, user: User, case_key: str, purpose: str | None = None
                     ) -> CaseHistory:
        purpose = self.policy.purpose(purpose).purpose_id
        with self.engine.connect() as conn:
            case = q.case_view(conn, case_key)
            if case is None:
                raise not_found("case", "Sagen")
            person = (q.person_summary(conn, case.person_key,
                                       reveal_protected=self.policy.may_see_protected_address(
                                           user)) if case.person_key else None)
            person_key = person.person_key if person else case.person_key
            facts = extra_queries.consent_facts(self.store, person_key) if person_key else []
            ((_, decision),) = self._decide(user, [case], facts, purpose)
            entries = tuple(q.case_history(conn, case_key)) if decision.content else ()
        if person_key:
            if decision.level == "none":
                self.record(user, purpose, [Access(person_key, person.cpr if person else None,
                                                   "case_history", "denied")])
            else:
                self.record(user, purpose, [Access(person_key, person.cpr if person else None,
                                                   "case_history", decision.level)])
        if decision.level == "none":
            raise forbidden(decision.explanation, "Din rolle giver ikke adgang til sager.")
        return CaseHistory(_case_view(case, decision), person, purpose, entries)

    # --- consent --------------------------------------------------------------------------

    def _person_for_consent(self, user: User, person_key: str) -> q.PersonSummary:
        if not self.policy.may_record_consent(user):
            raise forbidden("your roles may not record consent",
                            "Din rolle må ikke registrere samtykke.")
        with self.engine.connect() as conn:
            person = q.person_summary(conn, person_key)
        if person is None:
            raise not_found("person", "Borgeren")
        return person

    def give_consent(self, user: User, person_key: str, purpose: str,
                     unit_ids: Sequence[str] = (), valid_from: date | None = None,
                     valid_until: date | None = None) -> ConsentView:
        """Record the citizen's consent (ConsentGiven); it counts from the next request on."""
        purpose = self.policy.purpose(purpose).purpose_id
        person = self._person_for_consent(user, person_key)
        units = tuple(sorted({u.strip() for u in unit_ids if u.strip()} or user.units))
        if not units:
            raise ApiError(400, "no-units", "name at least one unit the consent covers",
                           "Angiv mindst én enhed, som samtykket dækker.")
        start = valid_from or self.today()
        if valid_until is not None and valid_until < start:
            raise ApiError(400, "bad-period", "valid_until is before valid_from",
                           "Slutdatoen ligger før startdatoen.")
        consent_id = f"glasplade-{uuid.uuid4().hex[:16]}"
        payload = ev.ConsentGiven(consent_id=consent_id, purpose=purpose, unit_ids=units,
                                  valid_from=start, valid_until=valid_until)
        self._append_person_event(user, person, consent_id, payload)
        self.record(user, purpose, [Access(person.person_key, person.cpr, "consent",
                                           "consent")])
        fact = ConsentFact(consent_id, purpose, units, start, valid_until)
        return ConsentView(consent_id, purpose, self.purpose_label(purpose), units, start,
                           valid_until, fact.state_on(self.today()))

    def withdraw_consent(self, user: User, person_key: str, consent_id: str,
                         reason: str | None = None) -> None:
        person = self._person_for_consent(user, person_key)
        facts = {c.consent_id: c for c in extra_queries.consent_facts(self.store,
                                                                      person.person_key)}
        fact = facts.get(consent_id)
        if fact is None:
            raise not_found("consent", "Samtykket")
        if fact.withdrawn:
            raise ApiError(409, "already-withdrawn", "the consent is already withdrawn",
                           "Samtykket er allerede trukket tilbage.")
        self._append_person_event(user, person, f"{consent_id}:withdrawn",
                                  ev.ConsentWithdrawn(consent_id=consent_id, reason=reason))
        self.record(user, fact.purpose, [Access(person.person_key, person.cpr, "consent",
                                                "consent")])

    def _append_person_event(self, user: User, person: q.PersonSummary, record_id: str,
                             payload: ev.Payload) -> None:
        self.store.append([ev.CanonicalEvent(
            event_id=uuid.uuid4(), source_system=SOURCE, source_record_id=record_id,
            source_version="1", occurred_at=datetime.now(UTC), person=person.cpr,
            person_key=person.person_key, actor=user.user_id, payload=payload)])
        log.info("consent event recorded", event_type=type(payload).__name__,
                 user=user.user_id)

    # --- the access log (auditor) ---------------------------------------------------------

    def access_log(self, user: User, *, person_key: str | None = None,
                   user_id: str | None = None, limit: int = 100) -> list[AccessEntry]:
        if not self.policy.may_read_access_log(user):
            raise forbidden("only auditors read the access log",
                            "Kun revisorer (auditor) kan se adgangsloggen.")
        if bool(person_key) == bool(user_id):
            raise ApiError(400, "person-or-user", "give exactly one of person or user",
                           "Angiv enten en borger eller en bruger.")
        self.catch_up(["access_log"])  # the views recorded a moment ago are listed too
        with self.engine.connect() as conn:
            if person_key:
                rows = q.accesses_to_person(conn, person_key, limit=limit)
            else:
                rows = q.accesses_by_user(conn, user_id or "", limit=limit)
            persons = {p.person_key: p for p in (
                q.person_summary(conn, k) for k in {r.person_key for r in rows}) if p}
        # Reading who looked at a person is itself a look at that person: every person the
        # answer names is recorded (one for a person's log, each one for a user's log).
        shown = {person_key} if person_key else {r.person_key for r in rows}
        self.record(user, "audit", [Access(k, persons[k].cpr if k in persons else None,
                                           "access_log", "audit") for k in sorted(shown)])
        return [AccessEntry(r.position, r.person_key,
                            persons[r.person_key].name if r.person_key in persons else None,
                            r.user_id, r.purpose, r.view, r.access, r.occurred_at)
                for r in rows]


def _case_view(c: q.CaseView, d: Decision) -> CaseView:
    if not d.content:
        return CaseView(c.case_key, c.source_system, c.department, c.unit_id, c.unit_name, d,
                        c.primary_caseworker)
    return CaseView(c.case_key, c.source_system, c.department, c.unit_id, c.unit_name, d,
                    c.primary_caseworker, c.case_type, c.title, c.status, c.law, c.paragraph,
                    c.opened_at, c.closed_at, c.caseworkers)
