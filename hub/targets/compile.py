"""Rules compiled to SQL over the target-group fact tables: one query per rule, the same on SQLite
and PostgreSQL (SQLAlchemy Core). Each query yields rows (subject, group_key, item):

- ``item`` NULL: ``subject`` is a member of ``group_key`` (household rules only);
- ``subject`` NULL: ``item`` is evidence for the whole group (household rules only);
- otherwise: ``subject`` matches and ``item`` is one piece of its evidence.

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


def _multi_department(rule: r.Rule, t: Tables, as_of: date) -> sa.Select:
    w = _active_cases(t, rule.departments).cte("w")
    q = (sa.select(w.c.person_key).group_by(w.c.person_key)
         .having(sa.func.count(sa.distinct(w.c.department)) >= rule.min_departments)).cte("q")
    return (sa.select(w.c.person_key.label("subject"), w.c.person_key.label("group_key"),
                      (_lit("case:") + w.c.case_key).label("item"))
            .join(q, q.c.person_key == w.c.person_key)
            .where(_consent(t, rule, w.c.person_key, as_of)))


def _same_paragraph(rule: r.Rule, t: Tables, as_of: date) -> sa.Select:
    g = t["grants"]
    active = _active_grant(g, rule, as_of)
    q = (sa.select(g.c.person_key, g.c.law, g.c.paragraph).where(active)
         .group_by(g.c.person_key, g.c.law, g.c.paragraph)
         .having(sa.func.count(sa.distinct(g.c.granting_unit_id)) >= rule.min_units)).cte("q")
    return (sa.select(g.c.person_key.label("subject"), g.c.person_key.label("group_key"),
                      (_lit("grant:") + g.c.grant_id).label("item"))
            .join(q, sa.and_(q.c.person_key == g.c.person_key, q.c.law == g.c.law,
                             q.c.paragraph == g.c.paragraph))
            .where(active, _consent(t, rule, g.c.person_key, as_of)))


def _long_benefit(rule: r.Rule, t: Tables, as_of: date) -> sa.Select:
    g = t["grants"]
    return (sa.select(g.c.person_key.label("subject"), g.c.person_key.label("group_key"),
                      (_lit("grant:") + g.c.grant_id).label("item"))
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


def _family(rule: r.Rule, t: Tables, as_of: date) -> sa.CompoundSelect:
    rel = t["relations"]
    w = _active_cases(t, rule.departments).cte("w")
    anchors = sa.select(w.c.person_key).where(
        w.c.department == rule.departments[0]).distinct().cte("anchors")
    linked = sa.select(rel.c.person_key.label("anchor"), rel.c.related_key.label("member"),
                       rel.c.relation).join(anchors, anchors.c.person_key == rel.c.person_key)
    if rule.relations:
        linked = linked.where(rel.c.relation.in_(rule.relations))
    members = sa.union_all(
        sa.select(anchors.c.person_key.label("anchor"), anchors.c.person_key.label("member"),
                  _NULL.label("relation")),
        linked).cte("members")
    covering = (sa.select(members.c.anchor).join(w, w.c.person_key == members.c.member)
                .group_by(members.c.anchor)
                .having(sa.func.count(sa.distinct(w.c.department)) == len(rule.departments))
                .where(_consent(t, rule, members.c.anchor, as_of))).cte("covering")
    group = _lit("family:") + members.c.anchor
    cases = (sa.select(members.c.anchor, group, _lit("case:") + w.c.case_key)
             .join(w, w.c.person_key == members.c.member)
             .join(covering, covering.c.anchor == members.c.anchor))
    relations = (sa.select(members.c.anchor, group, _lit("relation:") + members.c.relation
                           + _lit(":") + members.c.member)
                 .join(covering, covering.c.anchor == members.c.anchor)
                 .where(members.c.relation.is_not(None),
                        sa.exists().where(w.c.person_key == members.c.member)))
    return sa.union_all(cases, relations)


def _household(rule: r.Rule, t: Tables, as_of: date) -> sa.CompoundSelect:
    p = t["persons"]
    w = _active_cases(t, rule.departments).subquery("w")
    hw = (sa.select(p.c.household_key, p.c.person_key, w.c.department, w.c.case_key)
          .join(w, w.c.person_key == p.c.person_key)
          .where(p.c.household_key.is_not(None))).cte("hw")
    qual = (sa.select(hw.c.household_key).group_by(hw.c.household_key)
            .having(sa.func.count(sa.distinct(hw.c.department)) == len(rule.departments))
            ).cte("qual")
    group = _lit("household:") + hw.c.household_key
    subjects = (sa.select(hw.c.person_key, group, _NULL)
                .join(qual, qual.c.household_key == hw.c.household_key)
                .where(_consent(t, rule, hw.c.person_key, as_of)))
    evidence = (sa.select(_NULL, group, _lit("case:") + hw.c.case_key)
                .join(qual, qual.c.household_key == hw.c.household_key))
    return sa.union_all(subjects, evidence)


_COMPILERS = {
    "multi_department": _multi_department, "same_paragraph_multi_unit": _same_paragraph,
    "long_benefit": _long_benefit, "age_milestone": _age_milestone,
    "family_departments": _family, "household_departments": _household,
}


def run_rule(conn: sa.Connection, rule: r.Rule, t: Tables, as_of: date) -> set[r.Match]:
    """The rule's matches now, each with its evidence (one query)."""
    subjects: dict[str, str] = {}
    evidence: dict[str, set[str]] = defaultdict(set)
    group_evidence: dict[str, set[str]] = defaultdict(set)
    for subject, group_key, item in conn.execute(compile_rule(rule, t, as_of)):
        if item is None:
            subjects[subject] = group_key
        elif subject is None:
            group_evidence[group_key].add(item)
        else:
            subjects[subject] = group_key
            evidence[subject].add(item)
    return {r.Match(rule.rule_id, rule.version, s, g,
                    tuple(sorted(evidence[s] | group_evidence[g])))
            for s, g in subjects.items()}
