"""The access policy matrix: roles x (own unit, other unit with/without consent) x purpose."""

from __future__ import annotations

import tomllib
from datetime import date
from importlib import resources

import pytest

from hub.domain.access import AccessPolicy, CaseScope, ConsentFact, PolicyError, User

TODAY = date(2026, 11, 29)


@pytest.fixture(scope="module")
def policy() -> AccessPolicy:
    text = resources.files("hub.api").joinpath("access_policy.toml").read_text("utf-8")
    return AccessPolicy.from_mapping(tomllib.loads(text))


def user(role: str, *units: str) -> User:
    return User(f"u-{role}", role, frozenset({role}), frozenset(units))


OWN = CaseScope("dubu:S-1", "U-BUF")
OTHER = CaseScope("fasit:F-1", "U-JOB")
PURPOSE = "casework"


def consent(**kw) -> ConsentFact:
    base = dict(consent_id="c1", purpose=PURPOSE, unit_ids=("U-BUF",),
                valid_from=date(2026, 1, 1), valid_until=None, withdrawn=False)
    base.update(kw)
    return ConsentFact(**base)


@pytest.mark.parametrize(("role", "case", "consents", "level", "code"), [
    ("caseworker", OWN, [], "full", "own-unit"),
    ("caseworker", OTHER, [], "existence", "no-consent"),
    ("caseworker", OTHER, [consent()], "full", "consent"),
    ("caseworker", OTHER, [consent(withdrawn=True)], "existence", "no-consent"),
    ("caseworker", OTHER, [consent(valid_until=date(2026, 11, 28))], "existence", "no-consent"),
    ("caseworker", OTHER, [consent(valid_until=TODAY)], "full", "consent"),
    ("caseworker", OTHER, [consent(valid_from=date(2026, 12, 1))], "existence", "no-consent"),
    ("caseworker", OTHER, [consent(unit_ids=("U-VOKSEN",))], "existence", "no-consent"),
    ("caseworker", OTHER, [consent(purpose="notification")], "existence", "no-consent"),
    ("leader", OWN, [], "full", "own-unit"),
    ("leader", OTHER, [consent()], "existence", "no-consent"),
    ("auditor", OWN, [consent()], "none", "role-no-content"),
    ("admin", OTHER, [consent()], "none", "role-no-content"),
])
def test_case_decision_matrix(policy, role, case, consents, level, code):
    d = policy.case_decision(user(role, "U-BUF"), case, consents, PURPOSE, TODAY)
    assert (d.level, d.code) == (level, code)
    assert d.explanation  # every decision says why


def test_consent_decision_names_the_consent(policy):
    d = policy.case_decision(user("caseworker", "U-BUF"), OTHER,
                             [consent(consent_id="c-77", valid_until=date(2027, 1, 1))],
                             PURPOSE, TODAY)
    assert d.consent_id == "c-77" and "c-77" in d.explanation and "2027-01-01" in d.explanation


def test_user_without_known_role_sees_nothing(policy):
    d = policy.case_decision(User("x", "x", frozenset({"intern"})), OWN, [], PURPOSE, TODAY)
    assert d.level == "none" and d.code == "no-role"


def test_several_roles_take_the_most_permissive(policy):
    u = User("lc", "lc", frozenset({"auditor", "caseworker"}), frozenset({"U-BUF"}))
    assert policy.case_decision(u, OWN, [], PURPOSE, TODAY).level == "full"
    assert policy.may_read_access_log(u)


@pytest.mark.parametrize(("role", "person", "protected", "log", "consent_rec", "operate"), [
    ("caseworker", True, False, False, True, False),
    ("leader", True, True, False, False, False),
    ("auditor", False, False, True, False, False),
    ("admin", False, False, False, False, True),
])
def test_role_capabilities(policy, role, person, protected, log, consent_rec, operate):
    u = user(role, "U-BUF")
    assert policy.may_see_person(u) is person
    assert policy.may_see_protected_address(u) is protected
    assert policy.may_read_access_log(u) is log
    assert policy.may_record_consent(u) is consent_rec
    assert policy.may_operate(u) is operate


def test_consent_states():
    assert consent(withdrawn=True).state_on(TODAY) == "withdrawn"
    assert consent(valid_until=date(2026, 1, 2)).state_on(TODAY) == "expired"
    assert consent(valid_from=date(2027, 1, 1)).state_on(TODAY) == "pending"
    assert consent().state_on(TODAY) == "given"


def test_purposes(policy):
    assert policy.purpose(None).purpose_id == policy.default_purpose
    with pytest.raises(PolicyError, match="unknown purpose"):
        policy.purpose("curiosity")


@pytest.mark.parametrize(("doc", "message"), [
    ({"roles": {}}, "roles missing"),
    ({"roles": {"superuser": {}}}, "unknown role"),
    ({"roles": {"caseworker": {"case_content": "everything"}}}, "case_content"),
    ({"roles": {"caseworker": {"see_all": True}}}, "unknown keys"),
])
def test_bad_policy_is_rejected_with_a_clear_message(policy, doc, message):
    with pytest.raises(PolicyError, match=message):
        AccessPolicy.from_mapping(doc)


def test_policy_without_purposes_is_rejected():
    roles = {r: {} for r in ("caseworker", "leader", "auditor", "admin")}
    with pytest.raises(PolicyError, match="purposes"):
        AccessPolicy.from_mapping({"roles": roles})
    with pytest.raises(PolicyError, match="default_purpose"):
        AccessPolicy.from_mapping({"roles": roles, "purposes": [{"id": "a"}],
                                   "default_purpose": "b"})
