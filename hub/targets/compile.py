"""Rules compiled to SQL over the target-group fact tables: one query per rule, the same on SQLite
and PostgreSQL (SQLAlchemy Core). Each query yields rows (subjects, group_key, items, ...):
``subjects`` and every ``items`` column are newline-separated lists aggregated in SQL
(``string_agg`` / ``group_concat``), so a rule returns about one row per match rather than one
per piece of evidence. Every subject of a row matches with the union of the row's items as
evidence (rows of the same subject add up).

Date cut-offs are computed in Python (``hub.domain.rules``) and bound as parameters, so there is
no dialect-specific date arithmetic, and the reference evaluator uses the very same cut-offs.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import sqlalchemy as sa

from hub.domain import rules as r

Tables = dict[str, sa.Table]
_NULL = sa.cast(sa.null(), sa.String)
SEP = "\n"  # separates aggregated subjects and evidence items (never inside a key)


def _lit(text: str) -> sa.ColumnElement[str]:
    return sa.literal(text, sa.String)


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


def _consent(t: Tables, rule: r.Rule, subject: sa.ColumnElement, as_of: date
             ) -> sa.ColumnElement[bool]:
    if rule.consent is None:
        return sa.true()
    c = t["consents"]
    cond = [c.c.person_key == subject, c.c.valid_from <= as_of,
            sa.or_(c.c.valid_until.is_(None), c.c.valid_until >= as_of),
            sa.or_(c.c.withdrawn_on.is_(None), c.c.withdrawn_on > as_of)]
    if rule.consent.purpose is not None:
        cond.append(c.c.purpose == rule.consent.purpose)
    exists = sa.exists().where(*cond)
    return exists if rule.consent.mode == "required" else ~exists


def _active_cases(t: Tables, departments: tuple[str, ...]) -> sa.Select:
    c = t["cases"]
    q = sa.select(c.c.person_key, c.c.department, c.c.case_key).where(c.c.active == sa.true())
    return q.where(c.c.department.in_(departments)) if departments else q


def compile_rule(rule: r.Rule, t: Tables, as_of: date) -> sa.Select | sa.CompoundSelect:
    return _COMPILERS[rule.kind](rule, t, as_of)


def _agg(expr: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    return sa.func.aggregate_strings(expr, SEP)


def _multi_department(rule: r.Rule, t: Tables, as_of: date) -> sa.Select:
    c = t["cases"]
    q = (sa.select(c.c.person_key, c.c.person_key, _agg(_lit("case:") + c.c.case_key))
         .where(c.c.active == sa.true(), _consent(t, rule, c.c.person_key, as_of))
         .group_by(c.c.person_key)
         .having(sa.func.count(sa.distinct(c.c.department)) >= rule.min_departments))
    return q.where(c.c.department.in_(rule.departments)) if rule.departments else q


def _same_paragraph(rule: r.Rule, t: Tables, as_of: date) -> sa.Select:
    g = t["grants"]
    return (sa.select(g.c.person_key, g.c.person_key, _agg(_lit("grant:") + g.c.grant_id))
            .where(_active_grant(g, rule, as_of), _consent(t, rule, g.c.person_key, as_of))
            .group_by(g.c.person_key, g.c.law, g.c.paragraph)
            .having(sa.func.count(sa.distinct(g.c.granting_unit_id)) >= rule.min_units))


def _long_benefit(rule: r.Rule, t: Tables, as_of: date) -> sa.Select:
    g = t["grants"]
    return (sa.select(g.c.person_key, g.c.person_key, _lit("grant:") + g.c.grant_id)
            .where(_active_grant(g, rule, as_of),
                   g.c.valid_from < r.long_benefit_cutoff(rule, as_of),
                   _consent(t, rule, g.c.person_key, as_of)))


def _age_milestone(rule: r.Rule, t: Tables, as_of: date) -> sa.CompoundSelect:
    p, m = t["persons"], t["meetings"]
    w = _active_cases(t, rule.departments).cte("w")
    due_parts = []
    for ms in rule.milestones:
        cond = [p.c.birth_date > r.adult_cutoff(rule, as_of),
                p.c.birth_date <= r.milestone_cutoff(rule, ms, as_of),
                ~sa.exists().where(m.c.person_key == p.c.person_key,
                                   m.c.meeting_type == ms.meeting_type),
                _consent(t, rule, p.c.person_key, as_of)]
        if rule.departments:
            cond.append(sa.exists().where(w.c.person_key == p.c.person_key))
        due_parts.append(sa.select(p.c.person_key.label("subject"),
                                   p.c.person_key.label("group_key"),
                                   _lit(f"milestone:{ms.meeting_type}").label("item"))
                         .where(*cond))
    due = sa.union_all(*due_parts).cte("due")
    parts: list[sa.Select] = [sa.select(due.c.subject, due.c.group_key, due.c.item)]
    if rule.departments:
        subjects = sa.select(due.c.subject).distinct().subquery("s")
        parts.append(sa.select(w.c.person_key, w.c.person_key, _lit("case:") + w.c.case_key)
                     .join(subjects, subjects.c.subject == w.c.person_key))
    return sa.union_all(*parts)


def _family(rule: r.Rule, t: Tables, as_of: date) -> sa.Select:
    """Subjects: people with an active case in the first (anchoring) department whose family
    (themselves and everyone related to them, whichever side registered the relation) has
    active cases in every listed department; the same semantics as ``r.evaluate``."""
    rel, c = t["relations"], t["cases"]
    # Phase 1, cheap semi-joins: anchors whose family has an active case in every other
    # department. Phase 2 gathers the evidence of those only. Subqueries rather than CTEs where
    # PostgreSQL needs the tables' statistics to plan well.
    w = _active_cases(t, rule.departments).subquery("w")
    first = _active_cases(t, rule.departments[:1]).subquery("first")
    directions = ((rel.c.person_key, rel.c.related_key), (rel.c.related_key, rel.c.person_key))

    def chosen(q: sa.Select) -> sa.Select:
        return q.where(rel.c.relation.in_(rule.relations)) if rule.relations else q

    covers = []
    for d in rule.departments[1:]:
        parts = [sa.select(c.c.person_key).where(c.c.active == sa.true(), c.c.department == d)]
        parts += [chosen(sa.select(a).join(c, c.c.person_key == b)
                         .where(c.c.active == sa.true(), c.c.department == d))
                  for a, b in directions]
        covers.append(first.c.person_key.in_(sa.union(*parts)))
    anchors = sa.select(first.c.person_key).where(*covers).distinct().cte("anchors")
    # Relations registered only from the member's side are evidence as "<relation>-of".
    back = rel.alias("back")
    registered_here = sa.select(back.c.person_key).where(
        back.c.person_key == rel.c.related_key, back.c.related_key == rel.c.person_key)
    if rule.relations:
        registered_here = registered_here.where(back.c.relation.in_(rule.relations))
    linked = [
        chosen(sa.select(rel.c.person_key.label("anchor"), rel.c.related_key.label("member"),
                         rel.c.relation)
               .join(anchors, anchors.c.person_key == rel.c.person_key)),
        chosen(sa.select(rel.c.related_key, rel.c.person_key, rel.c.relation + _lit("-of"))
               .join(anchors, anchors.c.person_key == rel.c.related_key)
               .where(~sa.exists(registered_here)))]
    members = sa.union_all(
        sa.select(anchors.c.person_key.label("anchor"), anchors.c.person_key.label("member"),
                  _NULL.label("relation")),
        *linked).subquery("members")
    relation_item = sa.case((members.c.relation.is_not(None),
                             _lit("relation:") + members.c.relation + _lit(":")
                             + members.c.member), else_=_NULL)
    return (sa.select(members.c.anchor, _lit("family:") + members.c.anchor,
                      _agg(_lit("case:") + w.c.case_key), _agg(relation_item))
            .join(w, w.c.person_key == members.c.member)
            .where(_consent(t, rule, members.c.anchor, as_of))
            .group_by(members.c.anchor))


def _household(rule: r.Rule, t: Tables, as_of: date) -> sa.Select:
    p = t["persons"]
    w = _active_cases(t, rule.departments).subquery("w")
    subject = p.c.person_key
    if rule.consent is not None:
        subject = sa.case((_consent(t, rule, p.c.person_key, as_of), p.c.person_key),
                          else_=_NULL)
    return (sa.select(_agg(subject), _lit("household:") + p.c.household_key,
                      _agg(_lit("case:") + w.c.case_key))
            .join(w, w.c.person_key == p.c.person_key)
            .where(p.c.household_key.is_not(None))
            .group_by(p.c.household_key)
            .having(sa.func.count(sa.distinct(w.c.department)) == len(rule.departments)))


_COMPILERS = {
    "multi_department": _multi_department, "same_paragraph_multi_unit": _same_paragraph,
    "long_benefit": _long_benefit, "age_milestone": _age_milestone,
    "family_departments": _family, "household_departments": _household,
}


def run_rule(conn: sa.Connection, rule: r.Rule, t: Tables, as_of: date) -> set[r.Match]:
    """The rule's matches now, each with its evidence (one query)."""
    groups: dict[str, str] = {}
    evidence: dict[str, set[str]] = defaultdict(set)
    for subjects, group_key, *items in conn.execute(compile_rule(rule, t, as_of)):
        if not subjects:
            continue
        found = {x for column in items if column for x in column.split(SEP)}
        for s in subjects.split(SEP):
            groups[s] = group_key
            evidence[s] |= found
    return {r.Match(rule.rule_id, rule.version, s, g, tuple(sorted(evidence[s])))
            for s, g in groups.items()}
