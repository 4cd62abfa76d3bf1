"""Access policy: who may see what of a citizen, with an explanation for every decision.

Pure rules, no I/O. The policy itself is data (``AccessPolicy.from_mapping`` of a TOML table, by
default ``hub/api/access_policy.toml``); the API loads it, asks for a decision per request and
records the view. Consent is passed in as ``ConsentFact`` values read per request, so a consent
given or withdrawn takes effect on the very next request.

Levels of what a user may see of one case:

- ``full``: the content (title, type, legal basis, grants, timeline);
- ``existence``: only that the case exists and who is responsible (unit, primary caseworker,
  contact), as KOMBIT's SAPA shows it;
- ``none``: not even that (e.g. an auditor, who sees the access log, not cases).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

Level = Literal["full", "existence", "none"]
ROLES = ("caseworker", "leader", "auditor", "admin")
_CASE_SCOPES = ("own_units", "all", "none")


class PolicyError(ValueError):
    """The access policy (data) is malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    name: str
    roles: frozenset[str]
    units: frozenset[str] = frozenset()

    def has(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True, slots=True)
class ConsentFact:
    """A consent as the policy needs it: given (and maybe withdrawn) for a purpose and units."""

    consent_id: str
    purpose: str
    unit_ids: tuple[str, ...]
    valid_from: date
    valid_until: date | None = None
    withdrawn: bool = False

    def valid_on(self, day: date) -> bool:
        return (not self.withdrawn and self.valid_from <= day
                and (self.valid_until is None or day <= self.valid_until))

    def state_on(self, day: date) -> str:
        """given, withdrawn, expired or pending (not yet valid)."""
        if self.withdrawn:
            return "withdrawn"
        if day < self.valid_from:
            return "pending"
        if self.valid_until is not None and day > self.valid_until:
            return "expired"
        return "given"


@dataclass(frozen=True, slots=True)
class CaseScope:
    """What the policy needs to know about one case: its responsible unit."""

    case_key: str
    unit_id: str


@dataclass(frozen=True, slots=True)
class Decision:
    level: Level
    code: str
    """own-unit, consent, no-consent, all-units, role-no-content, no-role."""
    explanation: str
    consent_id: str | None = None

    @property
    def content(self) -> bool:
        return self.level == "full"


@dataclass(frozen=True, slots=True)
class RolePolicy:
    case_content: str = "none"
    """own_units, all or none: whose cases' content the role sees."""
    case_existence: bool = False
    """Sees that other units' cases exist and who is responsible."""
    consent_extends: bool = False
    """A valid consent covering one of the user's units and the purpose opens other units' cases."""
    person_data: bool = False
    """Name, address (unless protected), household, markings, consent state."""
    protected_address: bool = False
    """Sees a protected address (adressebeskyttelse)."""
    access_log: bool = False
    record_consent: bool = False
    operate: bool = False


@dataclass(frozen=True, slots=True)
class Purpose:
    purpose_id: str
    label: str


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    roles: Mapping[str, RolePolicy]
    purposes: tuple[Purpose, ...]
    default_purpose: str
    version: str = "1"
    _index: Mapping[str, Purpose] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> AccessPolicy:
        """Build from a parsed TOML document; raises PolicyError naming the bad entry."""
        roles: dict[str, RolePolicy] = {}
        known = set(RolePolicy.__dataclass_fields__)
        for name, table in dict(doc.get("roles", {})).items():
            if name not in ROLES:
                raise PolicyError(f"roles.{name}: unknown role (known: {', '.join(ROLES)})")
            unknown = set(table) - known
            if unknown:
                raise PolicyError(f"roles.{name}: unknown keys {sorted(unknown)}")
            rp = RolePolicy(**table)
            if rp.case_content not in _CASE_SCOPES:
                raise PolicyError(f"roles.{name}.case_content must be one of {_CASE_SCOPES}")
            roles[name] = rp
        missing = [r for r in ROLES if r not in roles]
        if missing:
            raise PolicyError(f"roles missing from the policy: {missing}")
        purposes = tuple(Purpose(str(p["id"]), str(p.get("label", p["id"])))
                         for p in doc.get("purposes", []))
        if not purposes:
            raise PolicyError("purposes: at least one purpose is needed")
        default = str(doc.get("default_purpose", purposes[0].purpose_id))
        index = {p.purpose_id: p for p in purposes}
        if default not in index:
            raise PolicyError(f"default_purpose {default!r} is not among the purposes")
        return cls(roles=roles, purposes=purposes, default_purpose=default,
                   version=str(doc.get("version", "1")), _index=index)

    # --- questions ------------------------------------------------------------------------

    def purpose(self, purpose_id: str | None) -> Purpose:
        pid = purpose_id or self.default_purpose
        if pid not in self._index:
            raise PolicyError(f"unknown purpose {pid!r}")
        return self._index[pid]

    def _any(self, user: User, attr: str) -> bool:
        return any(getattr(self.roles[r], attr) for r in user.roles if r in self.roles)

    def may_see_person(self, user: User) -> bool:
        return self._any(user, "person_data")

    def may_see_protected_address(self, user: User) -> bool:
        return self._any(user, "protected_address")

    def may_read_access_log(self, user: User) -> bool:
        return self._any(user, "access_log")

    def may_record_consent(self, user: User) -> bool:
        return self._any(user, "record_consent")

    def may_operate(self, user: User) -> bool:
        return self._any(user, "operate")

    def case_decision(self, user: User, case: CaseScope, consents: Iterable[ConsentFact],
                      purpose: str, today: date) -> Decision:
        """The most a user's roles allow for one case, with why."""
        own = [self.roles[r] for r in sorted(user.roles) if r in self.roles]
        if not own:
            return Decision("none", "no-role", "the user has no role in the access policy")
        if any(r.case_content == "all" for r in own):
            return Decision("full", "all-units", "the role sees the content of every unit's cases")
        if case.unit_id in user.units and any(r.case_content == "own_units" for r in own):
            return Decision("full", "own-unit",
                            f"the case belongs to the user's unit {case.unit_id}")
        if any(r.consent_extends for r in own):
            for c in consents:
                if (c.purpose == purpose and c.valid_on(today)
                        and user.units.intersection(c.unit_ids)):
                    until = f" until {c.valid_until.isoformat()}" if c.valid_until else ""
                    return Decision(
                        "full", "consent",
                        f"consent {c.consent_id} for purpose {purpose} covers unit(s) "
                        f"{', '.join(sorted(user.units.intersection(c.unit_ids)))}{until}",
                        consent_id=c.consent_id)
        if any(r.case_existence for r in own):
            return Decision("existence", "no-consent",
                            f"the case belongs to unit {case.unit_id}, not the user's; no valid "
                            f"consent covers the user's units for purpose {purpose}")
        return Decision("none", "role-no-content", "the user's roles do not see case content")

    def person_level(self, decisions: Iterable[Decision]) -> str:
        """The access level recorded for a view: full if any case content was shown."""
        levels = {d.level for d in decisions}
        if "full" in levels:
            return "full"
        if "existence" in levels:
            return "existence"
        return "person"
