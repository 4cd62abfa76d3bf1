"""Identity overlaps: one person known under two identifiers, or described differently by two
systems. Read from the target-group projection's identity tables (keyed digests only)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa

from projections.target_groups import TargetGroupsProjection

KINDS = {
    "substitute_and_cpr": "Samme borger under erstatningsnummer og CPR-nummer",
    "same_name_birth_date": "Samme navn og fødselsdato under to personnumre",
    "conflicting_names": "Forskellige navne for samme borger i to fagsystemer",
    "conflicting_addresses": "Forskellige adresser for samme borger i to fagsystemer",
}


@dataclass(frozen=True, slots=True)
class IdentityOverlap:
    overlap_id: str
    kind: str
    subject: str           # person pseudonym the overlap is filed under
    evidence: tuple[str, ...]

    @property
    def explanation(self) -> str:
        return f"{KINDS[self.kind]} ({len(self.evidence)} kilder)."


def find_identity_overlaps(conn: sa.Connection, p: TargetGroupsProjection
                           ) -> set[IdentityOverlap]:
    found: set[IdentityOverlap] = set()
    links, cases, grants = p.links, p.facts["cases"], p.facts["grants"]
    # 1. a substitute number replaced by a CPR number, but facts still filed under the old one
    old_cases: dict[tuple[str, str], set[str]] = defaultdict(set)
    q = (sa.select(links.c.old_key, links.c.new_key, cases.c.case_key)
         .join(cases, cases.c.person_key == links.c.old_key))
    for old, new, case_key in conn.execute(q):
        old_cases[(old, new)].add(f"case:{case_key}")
    q = (sa.select(links.c.old_key, links.c.new_key, grants.c.grant_id)
         .join(grants, grants.c.person_key == links.c.old_key))
    for old, new, grant_id in conn.execute(q):
        old_cases[(old, new)].add(f"grant:{grant_id}")
    for (old, new), items in old_cases.items():
        found.add(IdentityOverlap(f"identity:substitute:{old}", "substitute_and_cpr", new,
                                  tuple(sorted(items | {f"person:{old}", f"person:{new}"}))))
    # 2. the same name and birth date under two person keys (not already linked)
    ident = p.identity
    dup = (sa.select(ident.c.identity_digest).where(ident.c.identity_digest.is_not(None))
           .group_by(ident.c.identity_digest)
           .having(sa.func.count(sa.distinct(ident.c.person_key)) > 1)).subquery()
    groups: dict[str, set[str]] = defaultdict(set)
    for digest, key in conn.execute(sa.select(ident.c.identity_digest, ident.c.person_key)
                                    .join(dup, dup.c.identity_digest == ident.c.identity_digest)):
        groups[digest].add(key)
    linked = {frozenset(x) for x in conn.execute(sa.select(links.c.old_key, links.c.new_key))}
    for digest, keys in groups.items():
        if len(keys) == 2 and frozenset(keys) in linked:
            continue  # already known as a replaced identifier
        found.add(IdentityOverlap(f"identity:duplicate:{digest[:40]}", "same_name_birth_date",
                                  min(keys), tuple(sorted(f"person:{k}" for k in keys))))
    # 3. and 4. one person key, different names or addresses in different systems
    for column, kind in ((ident.c.name_digest, "conflicting_names"),
                         (ident.c.address_digest, "conflicting_addresses")):
        multi = (sa.select(ident.c.person_key).where(column.is_not(None))
                 .group_by(ident.c.person_key)
                 .having(sa.func.count(sa.distinct(column)) > 1)).subquery()
        systems: dict[str, set[str]] = defaultdict(set)
        for key, system in conn.execute(
                sa.select(ident.c.person_key, ident.c.source_system)
                .join(multi, multi.c.person_key == ident.c.person_key)
                .where(column.is_not(None))):
            systems[key].add(f"source:{system}")
        for key, items in systems.items():
            found.add(IdentityOverlap(f"identity:{kind}:{key}", kind, key, tuple(sorted(items))))
    return found
