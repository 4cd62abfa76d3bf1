"""Target-group rules as data: the rule model, its validation, and the naive reference evaluator.

Pure: no I/O and no imports from the rest of the project. A municipality's rules come from a TOML
file (``hub.targets.loader`` adds file and line to the errors raised here); the SQL engine in
``hub.targets.compile`` must give exactly the matches ``evaluate`` gives over the same facts
(``tests/targets/test_properties.py`` checks this with hypothesis).

Every match names its subject (a person pseudonym), its group (household, family or the person)
and its evidence: ``case:<case key>``, ``grant:<grant id>``, ``relation:<relation>:<person key>``
(``<relation>-of`` when only the other side registered it) or ``milestone:<meeting type>``.
The explanation is derived from the evidence.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

KINDS = ("household_departments", "family_departments", "multi_department",
         "same_paragraph_multi_unit", "long_benefit", "age_milestone")
WRITE_BACK_MODES = ("dry-run", "approval", "automatic")
CONSENT_MODES = ("required", "missing")


class RuleError(ValueError):
    """A rule is invalid; ``field`` names the offending field (dotted for sub-tables)."""

    def __init__(self, field: str, message: str, index: int | None = None):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.index = index


# --- the rule model -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Milestone:
    months: int          # age in months at which the meeting is due (16 years = 192)
    meeting_type: str    # the meeting that must have been held (CaseActionRecorded subtype etc.)


@dataclass(frozen=True, slots=True)
class ConsentCondition:
    mode: str            # required: only subjects with a valid consent; missing: only without
    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class WriteBack:
    mode: str                           # dry-run, approval, automatic
    marking_system: str | None = None   # e.g. fasit
    marking_type: str | None = None     # the person-group marking to set while matched
    pathway_case: bool = False          # create/update/passivate a coordinated-pathway case (SBSYS)
    other_system_marking: str | None = None  # where to mark "has a case in another system"


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: str
    version: str
    kind: str
    title: str
    departments: tuple[str, ...] = ()
    min_departments: int = 2
    relations: tuple[str, ...] = ()
    law: str | None = None
    paragraphs: tuple[str, ...] = ()
    grant_kind: str | None = None
    min_units: int = 2
    min_years: int = 0
    milestones: tuple[Milestone, ...] = ()
    lead_days: int = 0
    adult_months: int = 216
    consent: ConsentCondition | None = None
    write_back: WriteBack | None = None
    source: str = ""     # seed reference, for the reader of the report


@dataclass(frozen=True, slots=True)
class RuleSet:
    municipality: str
    version: str
    rules: tuple[Rule, ...]

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.rule_id == rule_id:
                return r
        raise KeyError(rule_id)


# --- validation -----------------------------------------------------------------------------

_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (str,), "version": (int, str), "kind": (str,), "title": (str,), "source": (str,),
    "departments": (list,), "min_departments": (int,), "relations": (list,), "law": (str,),
    "paragraphs": (list,), "grant_kind": (str,), "min_units": (int,), "min_years": (int,),
    "milestones": (list,), "lead_days": (int,), "adult_months": (int,), "consent": (dict,),
    "write_back": (dict,),
}
_REQUIRED_BY_KIND = {
    "household_departments": ("departments",), "family_departments": ("departments",),
    "multi_department": (), "same_paragraph_multi_unit": (), "long_benefit": ("paragraphs",
                                                                              "min_years"),
    "age_milestone": ("milestones",),
}


def _strings(raw: Any, name: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
        raise RuleError(name, "expected a list of non-empty strings")
    if len(set(raw)) != len(raw):
        raise RuleError(name, "repeated value")
    return tuple(raw)


def _positive(raw: dict[str, Any], name: str, default: int, minimum: int = 1) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or value < minimum:
        raise RuleError(name, f"must be an integer >= {minimum}, got {value!r}")
    return value


def parse_rule(raw: Mapping[str, Any]) -> Rule:
    """One rule from its table; raises ``RuleError`` naming the field."""
    raw = dict(raw)
    for name, value in raw.items():
        if name not in _FIELDS:
            raise RuleError(name, f"unknown field (known: {', '.join(sorted(_FIELDS))})")
        if not isinstance(value, _FIELDS[name]) or isinstance(value, bool):
            raise RuleError(name, f"wrong type {type(value).__name__}")
    for name in ("id", "kind", "title", "version"):
        if name not in raw:
            raise RuleError(name, "required field missing")
    kind = raw["kind"]
    if kind not in KINDS:
        raise RuleError("kind", f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    for name in _REQUIRED_BY_KIND[kind]:
        if name not in raw:
            raise RuleError(name, f"required for kind {kind}")
    departments = _strings(raw.get("departments", []), "departments")
    if kind in ("household_departments", "family_departments") and len(departments) < 2:
        raise RuleError("departments", "give at least two departments")
    min_departments = _positive(raw, "min_departments", 2, 2)
    if departments and kind == "multi_department" and min_departments > len(departments):
        raise RuleError("min_departments", "larger than the number of departments listed")
    milestones = []
    for i, m in enumerate(raw.get("milestones", [])):
        name = f"milestones[{i}]"
        if not isinstance(m, dict) or set(m) - {"age_months", "meeting"} or len(m) != 2:
            raise RuleError(name, "expected {age_months = <int>, meeting = <str>}")
        if not isinstance(m["age_months"], int) or not 0 < m["age_months"] < 300:
            raise RuleError(f"{name}.age_months", "expected months between 1 and 299")
        if not isinstance(m["meeting"], str) or not m["meeting"].strip():
            raise RuleError(f"{name}.meeting", "expected a meeting type")
        milestones.append(Milestone(m["age_months"], m["meeting"]))
    if kind == "age_milestone" and not milestones:
        raise RuleError("milestones", "give at least one milestone")
    return Rule(
        rule_id=_identifier(raw["id"]), version=str(raw["version"]), kind=kind,
        title=raw["title"], departments=departments, min_departments=min_departments,
        relations=_strings(raw.get("relations", []), "relations"), law=raw.get("law"),
        paragraphs=_strings(raw.get("paragraphs", []), "paragraphs"),
        grant_kind=raw.get("grant_kind"), min_units=_positive(raw, "min_units", 2, 2),
        min_years=_positive(raw, "min_years", 1) if kind == "long_benefit" else 0,
        milestones=tuple(milestones), lead_days=_positive(raw, "lead_days", 0, 0),
        adult_months=_positive(raw, "adult_months", 216),
        consent=_consent(raw.get("consent")), write_back=_write_back(raw.get("write_back")),
        source=raw.get("source", ""),
    )


def _identifier(value: str) -> str:
    if not value or not all(c.isalnum() or c in "-_." for c in value):
        raise RuleError("id", f"use letters, digits, '-', '_' or '.', got {value!r}")
    return value


def _consent(raw: dict[str, Any] | None) -> ConsentCondition | None:
    if raw is None:
        return None
    if set(raw) - {"mode", "purpose"}:
        raise RuleError("consent", f"unknown field(s) {sorted(set(raw) - {'mode', 'purpose'})}")
    if raw.get("mode") not in CONSENT_MODES:
        raise RuleError("consent.mode", f"expected one of {', '.join(CONSENT_MODES)}")
    purpose = raw.get("purpose")
    if purpose is not None and not isinstance(purpose, str):
        raise RuleError("consent.purpose", "expected a string")
    return ConsentCondition(raw["mode"], purpose)


def _write_back(raw: dict[str, Any] | None) -> WriteBack | None:
    if raw is None:
        return None
    known = {"mode", "marking_system", "marking_type", "pathway_case", "other_system_marking"}
    if set(raw) - known:
        raise RuleError("write_back", f"unknown field(s) {sorted(set(raw) - known)}")
    if raw.get("mode") not in WRITE_BACK_MODES:
        raise RuleError("write_back.mode", f"expected one of {', '.join(WRITE_BACK_MODES)}")
    if bool(raw.get("marking_system")) != bool(raw.get("marking_type")):
        raise RuleError("write_back.marking_type", "give marking_system and marking_type")
    other = raw.get("other_system_marking")
    if other is not None and (not isinstance(other, str) or not other.strip()):
        raise RuleError("write_back.other_system_marking", "expected a system name, e.g. fasit")
    if not raw.get("marking_type") and not raw.get("pathway_case") and not other:
        raise RuleError("write_back", "nothing to write: give a marking, pathway_case = true or "
                        "other_system_marking")
    return WriteBack(raw["mode"], raw.get("marking_system"), raw.get("marking_type"),
                     bool(raw.get("pathway_case", False)), other)


def parse_rule_set(raw: Mapping[str, Any]) -> RuleSet:
    """A rule file's content; ``RuleError.index`` tells which rule (None: the file's header)."""
    for name in ("municipality", "version"):
        if not isinstance(raw.get(name), str | int) or isinstance(raw.get(name), bool):
            raise RuleError(name, "required at the top of the file (a string)")
    unknown = set(raw) - {"municipality", "version", "rules"}
    if unknown:
        raise RuleError(sorted(unknown)[0], "unknown top-level field")
    rules: list[Rule] = []
    for i, table in enumerate(raw.get("rules", [])):
        try:
            rule = parse_rule(table)
        except RuleError as exc:
            raise RuleError(exc.field, exc.message, i) from None
        if any(r.rule_id == rule.rule_id for r in rules):
            raise RuleError("id", f"rule id {rule.rule_id!r} used twice", i)
        rules.append(rule)
    return RuleSet(str(raw["municipality"]), str(raw["version"]), tuple(rules))


# --- facts the rules read -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonFact:
    person_key: str
    birth_date: date | None = None
    household_key: str | None = None


@dataclass(frozen=True, slots=True)
class CaseFact:
    case_key: str
    person_key: str
    department: str
    unit_id: str
    active: bool = True


@dataclass(frozen=True, slots=True)
class GrantFact:
    grant_id: str
    person_key: str
    law: str
    paragraph: str
    kind: str
    granting_unit_id: str
    valid_from: date
    valid_to: date | None = None
    ended_on: date | None = None


@dataclass(frozen=True, slots=True)
class RelationFact:
    person_key: str
    related_key: str
    relation: str


@dataclass(frozen=True, slots=True)
class ConsentFact:
    consent_id: str
    person_key: str
    purpose: str
    valid_from: date
    valid_until: date | None = None
    withdrawn_on: date | None = None


@dataclass(frozen=True, slots=True)
class MeetingFact:
    person_key: str
    meeting_type: str
    held_on: date


@dataclass(frozen=True, slots=True)
class Facts:
    persons: tuple[PersonFact, ...] = ()
    cases: tuple[CaseFact, ...] = ()
    grants: tuple[GrantFact, ...] = ()
    relations: tuple[RelationFact, ...] = ()
    consents: tuple[ConsentFact, ...] = ()
    meetings: tuple[MeetingFact, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    rule_id: str
    rule_version: str
    subject: str
    group_key: str
    evidence: tuple[str, ...] = field(default=())


# --- shared date arithmetic (the SQL engine uses the same cut-offs as bind parameters) ---------


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 + months, 12)
    return date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


def grant_active(g: GrantFact, as_of: date) -> bool:
    return (g.valid_from <= as_of and (g.valid_to is None or g.valid_to >= as_of)
            and (g.ended_on is None or g.ended_on > as_of))


def consent_valid(c: ConsentFact, as_of: date, purpose: str | None) -> bool:
    return (c.valid_from <= as_of and (c.valid_until is None or c.valid_until >= as_of)
            and (c.withdrawn_on is None or c.withdrawn_on > as_of)
            and (purpose is None or c.purpose == purpose))


def milestone_cutoff(rule: Rule, m: Milestone, as_of: date) -> date:
    """Born on or before this date: the milestone (minus the lead time) has been reached."""
    return add_months(as_of + timedelta(days=rule.lead_days), -m.months)


def adult_cutoff(rule: Rule, as_of: date) -> date:
    """Born after this date: not yet adult."""
    return add_months(as_of, -rule.adult_months)


def long_benefit_cutoff(rule: Rule, as_of: date) -> date:
    """Held since before this date: held for more than ``min_years``."""
    return add_months(as_of, -12 * rule.min_years)


# --- the reference evaluator: naive, obviously right, slow ------------------------------------


def evaluate(rule: Rule, facts: Facts, as_of: date) -> set[Match]:
    """Every match of ``rule`` over ``facts`` on ``as_of``, the straightforward way."""
    active = [c for c in facts.cases if c.active]
    found: dict[str, tuple[str, set[str]]] = {}
    if rule.kind in ("household_departments", "family_departments"):
        found = _group_departments(rule, facts, active)
    elif rule.kind == "multi_department":
        for p in {c.person_key for c in active}:
            mine = [c for c in active if c.person_key == p
                    and (not rule.departments or c.department in rule.departments)]
            if len({c.department for c in mine}) >= rule.min_departments:
                found[p] = (p, {f"case:{c.case_key}" for c in mine})
    elif rule.kind == "same_paragraph_multi_unit":
        units: dict[tuple[str, str, str], list[GrantFact]] = defaultdict(list)
        for g in facts.grants:
            if grant_active(g, as_of) and _grant_selected(rule, g):
                units[(g.person_key, g.law, g.paragraph)].append(g)
        for (p, _, _), gs in units.items():
            if len({g.granting_unit_id for g in gs}) >= rule.min_units:
                found.setdefault(p, (p, set()))[1].update(f"grant:{g.grant_id}" for g in gs)
    elif rule.kind == "long_benefit":
        cutoff = long_benefit_cutoff(rule, as_of)
        for g in facts.grants:
            if grant_active(g, as_of) and _grant_selected(rule, g) and g.valid_from < cutoff:
                found.setdefault(g.person_key, (g.person_key, set()))[1].add(f"grant:{g.grant_id}")
    elif rule.kind == "age_milestone":
        found = _milestones(rule, facts, active, as_of)
    subjects = _consent_filter(rule, facts, set(found), as_of)
    return {Match(rule.rule_id, rule.version, s, found[s][0], tuple(sorted(found[s][1])))
            for s in subjects}


def _grant_selected(rule: Rule, g: GrantFact) -> bool:
    return ((not rule.paragraphs or g.paragraph in rule.paragraphs)
            and (rule.law is None or g.law == rule.law)
            and (rule.grant_kind is None or g.kind == rule.grant_kind))


def _group_departments(rule: Rule, facts: Facts, active: list[CaseFact]
                       ) -> dict[str, tuple[str, set[str]]]:
    wanted = [c for c in active if c.department in rule.departments]
    by_person: dict[str, list[CaseFact]] = defaultdict(list)
    for c in wanted:
        by_person[c.person_key].append(c)
    found: dict[str, tuple[str, set[str]]] = {}
    if rule.kind == "household_departments":
        members: dict[str, set[str]] = defaultdict(set)
        for p in facts.persons:
            if p.household_key is not None:
                members[p.household_key].add(p.person_key)
        for hh, ps in members.items():
            cases = [c for p in ps for c in by_person[p]]
            if {c.department for c in cases} >= set(rule.departments):
                evidence = {f"case:{c.case_key}" for c in cases}
                for p in ps:
                    if by_person[p]:
                        found[p] = (f"household:{hh}", evidence)
        return found
    # A family is a family whichever side registered the relation: the anchors (people with an
    # active case in the first department) with everyone related to them, in either direction.
    # A relation registered only from the other side is evidence as ``<relation>-of``: the
    # subject is the <relation> of that person (registered mother -> child "child": the child's
    # evidence is ``relation:child-of:<mother>``).
    chosen = [r for r in facts.relations if not rule.relations or r.relation in rule.relations]
    links: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for r in chosen:
        links[r.person_key].add((r.relation, r.related_key))
    forward = {(r.person_key, r.related_key) for r in chosen}
    for r in chosen:
        if (r.related_key, r.person_key) not in forward:
            links[r.related_key].add((f"{r.relation}-of", r.person_key))
    for p, own in by_person.items():
        if not any(c.department == rule.departments[0] for c in own):
            continue
        rels = links.get(p, set())
        cases = own + [c for _, other in rels for c in by_person.get(other, [])]
        if {c.department for c in cases} >= set(rule.departments):
            evidence = {f"case:{c.case_key}" for c in cases}
            evidence |= {f"relation:{rel}:{other}" for rel, other in rels if other in by_person}
            found[p] = (f"family:{p}", evidence)
    return found


def _milestones(rule: Rule, facts: Facts, active: list[CaseFact], as_of: date
                ) -> dict[str, tuple[str, set[str]]]:
    held = {(m.person_key, m.meeting_type) for m in facts.meetings}
    adult = adult_cutoff(rule, as_of)
    found: dict[str, tuple[str, set[str]]] = {}
    for p in facts.persons:
        if p.birth_date is None or p.birth_date <= adult:
            continue
        cases = [c for c in active if c.person_key == p.person_key
                 and c.department in rule.departments]  # no departments: no case evidence
        if rule.departments and not cases:
            continue
        due = {f"milestone:{m.meeting_type}" for m in rule.milestones
               if p.birth_date <= milestone_cutoff(rule, m, as_of)
               and (p.person_key, m.meeting_type) not in held}
        if due:
            found[p.person_key] = (p.person_key, due | {f"case:{c.case_key}" for c in cases})
    return found


def _consent_filter(rule: Rule, facts: Facts, subjects: set[str], as_of: date) -> set[str]:
    if rule.consent is None:
        return subjects
    consenting = {c.person_key for c in facts.consents
                  if consent_valid(c, as_of, rule.consent.purpose)}
    if rule.consent.mode == "required":
        return subjects & consenting
    return subjects - consenting


def evaluate_all(rules: Iterable[Rule], facts: Facts, as_of: date) -> set[Match]:
    return {m for r in rules for m in evaluate(r, facts, as_of)}


# --- explanations ---------------------------------------------------------------------------

_KIND_TEXT = {
    "household_departments": "Husstanden har aktive sager i {deps}",
    "family_departments": "Familien har aktive sager i {deps}",
    "multi_department": "Aktive sager i mindst {n} afdelinger",
    "same_paragraph_multi_unit": "Samme paragraf bevilget af flere enheder",
    "long_benefit": "Ydelse modtaget i mere end {years} år",
    "age_milestone": "Overgangsmøde forfalden før 18 år",
}


def explain(rule: Rule, match: Match) -> str:
    """A short Danish sentence (the dashboard's language) built from the evidence only."""
    head = _KIND_TEXT[rule.kind].format(deps=" og ".join(rule.departments),
                                        n=rule.min_departments, years=rule.min_years)
    counts: dict[str, int] = defaultdict(int)
    for item in match.evidence:
        counts[item.split(":", 1)[0]] += 1
    words = {"case": "sag(er)", "grant": "bevilling(er)", "relation": "relation(er)",
             "milestone": "manglende møde(r)"}
    tail = ", ".join(f"{n} {words.get(k, k)}" for k, n in sorted(counts.items()))
    return f"{rule.title}: {head} ({tail})."
