"""Rule files: the shipped ones load; bad ones fail with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.domain import rules as r
from hub.targets.loader import RuleFileError, default_rules_dir, load_rule_file, load_rule_text

MUNICIPALITY_FILES = [default_rules_dir() / f"{m}.toml"
                      for m in ("odense", "frederikssund", "esbjerg", "ballerup")]

GOOD = """\
municipality = "test"
version = "1"

[[rules]]
id = "a"
version = 1
kind = "multi_department"
title = "A"

[[rules]]
id = "b"
version = 2
kind = "family_departments"
title = "B"
departments = ["BUF", "BSF"]

[rules.consent]
mode = "required"
purpose = "forloeb"
"""


@pytest.mark.parametrize("name", ["odense", "frederikssund", "esbjerg", "ballerup"])
def test_shipped_rule_files_load(name):
    rs = load_rule_file(default_rules_dir() / f"{name}.toml")
    assert rs.municipality == name and rs.rules
    assert all(rule.source for rule in rs.rules)  # every rule cites its seed


def test_shipped_kinds_cover_every_rule_kind():
    kinds = {rule.kind for f in MUNICIPALITY_FILES
             for rule in load_rule_file(f).rules}
    assert kinds == set(r.KINDS)
    assert any(rule.consent for f in MUNICIPALITY_FILES
               for rule in load_rule_file(f).rules)


def test_good_text_parses_with_consent_and_versions():
    rs = load_rule_text(GOOD)
    assert [x.version for x in rs.rules] == ["1", "2"]
    assert rs.rule("b").consent == r.ConsentCondition("required", "forloeb")


@pytest.mark.parametrize("edit, line, field", [
    (("kind = \"family_departments\"", "kind = \"famliy\""), 13, "kind"),
    (("departments = [\"BUF\", \"BSF\"]", "departments = [\"BUF\"]"), 15, "departments"),
    (("mode = \"required\"", "mode = \"maybe\""), 18, "consent.mode"),
    (("title = \"A\"", "title = \"A\"\nmin_departments = 1"), 9, "min_departments"),
    (("title = \"B\"", "title = \"B\"\ncolour = \"red\""), 15, "colour"),
    (("id = \"b\"", "id = \"a\""), 11, "id"),
    (("version = 2\n", ""), 10, "version"),  # missing: the rule's header
])
def test_errors_name_file_line_and_field(edit, line, field):
    text = GOOD.replace(*edit)
    with pytest.raises(RuleFileError) as info:
        load_rule_text(text, "x.toml")
    err = info.value
    assert (err.path, err.line, err.field) == ("x.toml", line, field), str(err)
    assert str(err).startswith(f"x.toml:{line}: {field}: ")


def test_toml_syntax_error_has_the_line():
    with pytest.raises(RuleFileError) as info:
        load_rule_text(GOOD.replace('title = "B"', 'title = "B'), "y.toml")
    assert info.value.line == 14 and "not valid TOML" in str(info.value)


def test_missing_file_and_missing_header(tmp_path: Path):
    with pytest.raises(RuleFileError, match="cannot read"):
        load_rule_file(tmp_path / "nope.toml")
    with pytest.raises(RuleFileError, match="municipality: required"):
        load_rule_text(GOOD.replace('municipality = "test"\n', ""))


def test_write_back_validation():
    bad = GOOD + '\n[rules.write_back]\nmode = "automatic"\n'
    with pytest.raises(RuleFileError, match="write_back: nothing to write") as info:
        load_rule_text(bad)
    assert info.value.line == 21
    ok = GOOD + ('\n[rules.write_back]\nmode = "approval"\nmarking_system = "fasit"\n'
                 'marking_type = "SB"\n')
    assert load_rule_text(ok).rule("b").write_back == r.WriteBack("approval", "fasit", "SB")


def test_milestones_are_checked():
    text = GOOD.replace('kind = "multi_department"',
                        'kind = "age_milestone"\nmilestones = [{age_months = 0, meeting = "m"}]')
    with pytest.raises(RuleFileError, match=r"milestones\[0\].age_months") as info:
        load_rule_text(text)
    assert info.value.line == 8
