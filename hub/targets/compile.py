"""Rules compiled to SQL over the target-group fact tables (SQLite and PostgreSQL, SQLAlchemy Core).

Each rule compiles to a :class:`Plan`: one query yielding rows (subjects, group_key, items, ...),
sometimes preceded by temporary tables it fills first (the family rule stages the active cases
it reads several times and then its anchors, so that PostgreSQL plans every step knowing how
many rows there are). ``subjects`` and every ``items`` column are newline-separated lists
aggregated in SQL (``string_agg`` / ``group_concat``), so a rule returns about one row per match
rather than one per piece of evidence. Every subject of a row matches with the union of the
row's items as evidence (rows of the same subject add up).

Consent is applied to the subjects afterwards, as the reference evaluator does
(``hub.domain.rules``), so rules that differ only in their consent condition (and id, title,
source, write-back) share one query: ``run_rules`` evaluates each distinct rule shape once.

Date cut-offs are computed in Python (``hub.domain.rules``) and bound as parameters, so there is
no dialect-specific date arithmetic, and the reference evaluator uses the very same cut-offs.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, KeysView, Mapping
from datetime import date

import sqlalchemy as sa

from hub.domain import rules as r

Tables = dict[str, sa.Table]
Key = tuple[str, str]  # (rule id, subject)
_NULL = sa.cast(sa.null(), sa.String)
SEP = "\n"  # separates aggregated subjects and evidence items (never inside a key)
#: PostgreSQL settings for the transaction that evaluates rules (``SET LOCAL``). The rule
#: queries are large one-off analytical queries: JIT compilation took 1.9 s of the family query
#: at 500,000 citizens and saved nothing, and the default 4 MB ``work_mem`` made their hash
#: aggregates and sorts spill to disk.
PG_SETTINGS = (("jit", "off"), ("work_mem", "64MB"))


@dataclasses.dataclass(frozen=True)
class Plan:
    """What evaluating a rule executes: each stage's temporary table filled from its select, in
    order, then ``query``; the temporary tables are dropped afterwards."""

    query: sa.Select | sa.CompoundSelect
    stages: tuple[tuple[sa.Table, sa.Select], ...] = ()


def tune(conn: sa.Connection) -> None:
    """Apply ``PG_SETTINGS`` for the rest of the current transaction (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        for name, value in PG_SETTINGS:
            conn.execute(sa.text("SELECT set_config(:name, :value, true)"),
                         {"name": name, "value": value})


def _lit(text: str) -> sa.ColumnElement[str]:
    return sa.literal(text, sa.String)


def _temporary(prefix: str, *columns: str, key: bool = False) -> sa.Table:
    """A temporary table of string columns (``key``: they are its primary key) with a name of
    its own, so it never collides with one left over from a failed evaluation."""
    return sa.Table(f"{prefix}_{secrets.token_hex(4)}", sa.MetaData(),
                    *(sa.Column(c, sa.String(200), primary_key=key) for c in columns),
                    prefixes=["TEMPORARY"])


def _active_grant(g: sa.Table, rule: r.Rule, as_of: date) -> sa.ColumnElement[bool]:
    cond = [g.c.valid_from <= as_of,
            sa.or_(g.c.valid_to.is_(None), g.c.valid_to >= as_of),
            sa.or_(g.c.ended_on.is_(None), g.c.ended_on > as_of)]
    if rule.paragraphs:
        cond.append(g.c.paragraph.in_(rule.paragraphs))
    if rule.law is not None:
        cond.append(g.c.law == rule.law)
    if rule.grant_kind is not None:
        cond.append(g.c.kind == rule.grant_kind)
    return sa.and_(*cond)


def _consenting(t: Tables, consent: r.ConsentCondition, as_of: date) -> sa.Select:
    """The people with a valid consent (for the purpose, if the condition names one)."""
    c = t["consents"]
    cond = [c.c.valid_from <= as_of,
            sa.or_(c.c.valid_until.is_(None), c.c.valid_until >= as_of),
            sa.or_(c.c.withdrawn_on.is_(None), c.c.withdrawn_on > as_of)]
    if consent.purpose is not None:
        cond.append(c.c.purpose == consent.purpose)
    return sa.select(c.c.person_key).where(*cond).distinct()


def _active_cases(t: Tables, departments: tuple[str, ...]) -> sa.Select:
    c = t["cases"]
    q = sa.select(c.c.person_key, c.c.department, c.c.case_key).where(c.c.active == sa.true())
    return q.where(c.c.department.in_(departments)) if departments else q


def _at_least(column: sa.ColumnElement, n: int) -> sa.ColumnElement[bool]:
    """``count(DISTINCT column) >= n``; for n = 2 as ``min <> max`` (same meaning for a non-null
    column), which PostgreSQL can compute in a hash aggregate without sorting each group."""
    if n == 2:
        return sa.func.min(column) != sa.func.max(column)
    return sa.func.count(sa.distinct(column)) >= n


def compile_rule(rule: r.Rule, t: Tables, as_of: date) -> Plan:
    """The rule's plan, without its consent condition (``run_rules`` applies that)."""
    return _COMPILERS[rule.kind](rule, t, as_of)


def _agg(expr: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    return sa.func.aggregate_strings(expr, SEP)


def _multi_department(rule: r.Rule, t: Tables, as_of: date) -> Plan:
    c = t["cases"]
    q = (sa.select(c.c.person_key, c.c.person_key, _agg(_lit("case:") + c.c.case_key))
         .where(c.c.active == sa.true())
         .group_by(c.c.person_key)
         .having(_at_least(c.c.department, rule.min_departments)))
    return Plan(q.where(c.c.department.in_(rule.departments)) if rule.departments else q)


def _same_paragraph(rule: r.Rule, t: Tables, as_of: date) -> Plan:
    g = t["grants"]
    return Plan(sa.select(g.c.person_key, g.c.person_key, _agg(_lit("grant:") + g.c.grant_id))
                .where(_active_grant(g, rule, as_of))
                .group_by(g.c.person_key, g.c.law, g.c.paragraph)
                .having(sa.func.count(sa.distinct(g.c.granting_unit_id)) >= rule.min_units))


def _long_benefit(rule: r.Rule, t: Tables, as_of: date) -> Plan:
    g = t["grants"]
    return Plan(sa.select(g.c.person_key, g.c.person_key, _agg(_lit("grant:") + g.c.grant_id))
                .where(_active_grant(g, rule, as_of),
                       g.c.valid_from < r.long_benefit_cutoff(rule, as_of))
                .group_by(g.c.person_key))


def _age_milestone(rule: r.Rule, t: Tables, as_of: date) -> Plan:
    """One row per young person with a milestone due: a column per milestone (its item or
    NULL) and, with departments, the person's active cases there (joined: only people who have
    one). The birth-date window comes first, so PostgreSQL reads few people (indexed)."""
    p, m = t["persons"], t["meetings"]
    due = [sa.and_(p.c.birth_date <= r.milestone_cutoff(rule, ms, as_of),
                   ~sa.exists().where(m.c.person_key == p.c.person_key,
                                      m.c.meeting_type == ms.meeting_type))
           for ms in rule.milestones]
    items = [sa.case((d, _lit(f"milestone:{ms.meeting_type}")), else_=_NULL)
             for d, ms in zip(due, rule.milestones, strict=True)]
    where = (p.c.birth_date > r.adult_cutoff(rule, as_of), sa.or_(*due))
    if not rule.departments:  # no departments: no case condition and no case evidence
        return Plan(sa.select(p.c.person_key, p.c.person_key, *items).where(*where))
    w = _active_cases(t, rule.departments).subquery("w")
    return Plan(sa.select(p.c.person_key, p.c.person_key, *items,
                          _agg(_lit("case:") + w.c.case_key))
                .join(w, w.c.person_key == p.c.person_key)
                .where(*where)
                .group_by(p.c.person_key, p.c.birth_date))


def _family(rule: r.Rule, t: Tables, as_of: date) -> Plan:
    """Subjects: people with an active case in the first (anchoring) department whose family
    (themselves and everyone related to them, whichever side registered the relation) has
    active cases in every listed department; the same semantics as ``r.evaluate``.

    Three steps, each planned with true statistics: the active cases in the departments (a
    temporary table: read once instead of four times), the anchors whose family covers every
    department (cheap semi-joins; a few per cent of the first department's people), then the
    evidence of those anchors only."""
    rel = t["relations"]
    cases = _temporary("tg_run_cases", "person_key", "department", "case_key")
    anchors = _temporary("tg_run_anchors", "person_key", key=True)
    directions = ((rel.c.person_key, rel.c.related_key), (rel.c.related_key, rel.c.person_key))

    def chosen(q: sa.Select) -> sa.Select:
        return q.where(rel.c.relation.in_(rule.relations)) if rule.relations else q

    def having(department: str) -> sa.Select:
        return sa.select(cases.c.person_key).where(cases.c.department == department)

    first = having(rule.departments[0]).subquery("first")
    covers = []
    for d in rule.departments[1:]:
        # IN rather than a join: PostgreSQL then hashes the department's few people, not the
        # relations
        related = (chosen(sa.select(a).where(b.in_(having(d)))) for a, b in directions)
        covers.append(first.c.person_key.in_(sa.union(having(d), *related)))
    found = sa.select(first.c.person_key).where(*covers).distinct()
    # A relation registered only from the member's side is evidence as "<relation>-of": rows
    # from both sides, and those of the member's side dropped where the anchor's side has one.
    raw = sa.union_all(*(
        chosen(sa.select(a.label("anchor"), b.label("member"), rel.c.relation,
                         sa.literal(forward).label("forward"))
               .join(anchors, anchors.c.person_key == a))
        for (a, b), forward in zip(directions, (1, 0), strict=True))).subquery("raw")
    sided = sa.select(raw, sa.func.max(raw.c.forward).over(
        partition_by=(raw.c.anchor, raw.c.member)).label("registered_here")).subquery("sided")
    members = sa.union_all(
        sa.select(anchors.c.person_key.label("anchor"), anchors.c.person_key.label("member"),
                  _NULL.label("relation")),
        sa.select(sided.c.anchor, sided.c.member,
                  sa.case((sided.c.forward == 1, sided.c.relation),
                          else_=sided.c.relation + _lit("-of")))
        .where(sa.or_(sided.c.forward == 1, sided.c.registered_here == 0))).subquery("members")
    relation_item = sa.case((members.c.relation.is_not(None),
                             _lit("relation:") + members.c.relation + _lit(":")
                             + members.c.member), else_=_NULL)
    query = (sa.select(members.c.anchor, _lit("family:") + members.c.anchor,
                       _agg(_lit("case:") + cases.c.case_key), _agg(relation_item))
             .join(cases, cases.c.person_key == members.c.member)
             .group_by(members.c.anchor))
    return Plan(query, ((cases, _active_cases(t, rule.departments)), (anchors, found)))


def _household(rule: r.Rule, t: Tables, as_of: date) -> Plan:
    p = t["persons"]
    w = _active_cases(t, rule.departments).subquery("w")
    return Plan(sa.select(_agg(p.c.person_key), _lit("household:") + p.c.household_key,
                          _agg(_lit("case:") + w.c.case_key))
                .join(w, w.c.person_key == p.c.person_key)
                .where(p.c.household_key.is_not(None))
                .group_by(p.c.household_key)
                .having(_at_least(w.c.department, len(rule.departments))))


_COMPILERS: dict[str, Callable[[r.Rule, Tables, date], Plan]] = {
    "multi_department": _multi_department, "same_paragraph_multi_unit": _same_paragraph,
    "long_benefit": _long_benefit, "age_milestone": _age_milestone,
    "family_departments": _family, "household_departments": _household,
}


# --- evaluation -------------------------------------------------------------------------------


def _evidence(items: str) -> tuple[str, ...]:
    return tuple(sorted(set(items.split(SEP)))) if items else ()


class Found(Mapping[Key, r.Match]):
    """The matches of an evaluation by (rule id, subject), kept as the SQL returned them: a
    ``Match`` (evidence split, deduplicated and sorted) is built only when one is looked up, so
    a nightly run over 200,000 matches builds only the few thousand that are new."""

    def __init__(self) -> None:
        self._rows: dict[Key, tuple[str, str, str]] = {}  # (rule version, group, items)

    def add(self, rule: r.Rule, rows: Iterable[tuple[str, str, str]]) -> None:
        """Record (subject, group key, items) rows of ``rule``; rows of one subject add up."""
        found, rule_id, version = self._rows, rule.rule_id, rule.version
        for subject, group_key, items in rows:
            key = (rule_id, subject)
            before = found.get(key)
            if before is not None and before[2]:
                items = f"{before[2]}{SEP}{items}" if items else before[2]
            found[key] = (version, group_key, items)

    def __getitem__(self, key: Key) -> r.Match:
        version, group_key, items = self._rows[key]
        return r.Match(key[0], version, key[1], group_key, _evidence(items))

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def keys(self) -> KeysView[Key]:
        """The (rule id, subject) keys, as a set-like view (set operations run in C)."""
        return self._rows.keys()

    def __iter__(self) -> Iterator[Key]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def matches(self) -> set[r.Match]:
        return {self[k] for k in self._rows}


def _shape(rule: r.Rule) -> r.Rule:
    """What the SQL depends on: the rule without its identity, consent and write-back."""
    return dataclasses.replace(rule, rule_id="", version="", title="", source="", consent=None,
                               write_back=None)


def _execute(conn: sa.Connection, plan: Plan) -> list[tuple[str, str, str]]:
    """Run a plan; rows as (subject, group key, items), the items columns joined and a row of
    several subjects (a household's people) split into one per subject."""
    made = []
    try:
        for table, select in plan.stages:
            table.create(conn)
            made.append(table)
            conn.execute(table.insert().from_select(list(table.columns.keys()), select))
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f'ANALYZE "{table.name}"')
        rows = []
        for subjects, group_key, *columns in conn.execute(plan.query).fetchall():
            if not subjects:
                continue
            items = (columns[0] or "") if len(columns) == 1 else SEP.join(filter(None, columns))
            if SEP in subjects:
                rows += [(s, group_key, items) for s in dict.fromkeys(subjects.split(SEP))]
            else:
                rows.append((subjects, group_key, items))
    finally:  # also on failure: a pooled SQLite connection would keep them
        for table in reversed(made):
            table.drop(conn, checkfirst=True)
    return rows


def _admits(conn: sa.Connection, rule: r.Rule, t: Tables, as_of: date,
            consenting: dict[str | None, frozenset[str]]) -> Callable[[str], bool] | None:
    """The rule's consent condition as a test of a subject (None: no condition)."""
    if rule.consent is None:
        return None
    purpose = rule.consent.purpose
    if purpose not in consenting:
        consenting[purpose] = frozenset(
            k for (k,) in conn.execute(_consenting(t, rule.consent, as_of)).fetchall())
    people = consenting[purpose]
    return people.__contains__ if rule.consent.mode == "required" else (
        lambda s: s not in people)


def run_rules(conn: sa.Connection, rules: Iterable[r.Rule], t: Tables, as_of: date,
              timings: dict[str, float] | None = None) -> Found:
    """Every rule's matches now, each with its evidence. One plan per distinct rule shape;
    ``timings`` gets the seconds of each (``rule:<id>[+<id>...]``)."""
    tune(conn)
    shapes: dict[r.Rule, list[r.Rule]] = {}
    for rule in rules:
        shapes.setdefault(_shape(rule), []).append(rule)
    found = Found()
    consenting: dict[str | None, frozenset[str]] = {}
    for shape, group in shapes.items():
        t0 = time.perf_counter()
        rows = _execute(conn, compile_rule(shape, t, as_of))
        for rule in group:
            admits = _admits(conn, rule, t, as_of, consenting)
            found.add(rule, rows if admits is None else [x for x in rows if admits(x[0])])
        if timings is not None:
            timings["rule:" + "+".join(x.rule_id for x in group)] = time.perf_counter() - t0
    return found


def run_rule(conn: sa.Connection, rule: r.Rule, t: Tables, as_of: date) -> set[r.Match]:
    """The rule's matches now, each with its evidence."""
    return run_rules(conn, [rule], t, as_of).matches()
