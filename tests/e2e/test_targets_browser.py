"""The target-group pages end to end in real headless Chromium against a running server: the
nightly overlap run (the real ``glasplade overlap run`` CLI in its own process) finds a family
with cases in the children's unit and the jobcentre and plans write-back in approval mode; a
leader sees the list, opens "hvorfor" and its evidence, and approves one write-back; a
caseworker cannot approve; the auditor finds the explanation view in the access log."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.bootstrap import bootstrap
from hub.config import Settings
from hub.targets import writeback as wb
from projections.db import readmodel_engine
from tests.api.world import populate
from tests.e2e.conftest import LiveServer, running_server
from tests.e2e.test_dashboard_browser import (  # noqa: F401 (fixture)
    auditor_log_of,
    browser,
    login,
)

pytestmark = [pytest.mark.browser]

RULE = "e2e-buf-jobcenter-family"
TITLE = "Familie med aktive sager i BUF og jobcenter"
# One rule with write-back in leader-approval mode, shaped like deploy/rules/odense.toml's BUF x BSF
# rule but over the departments the test world has: the mother (JOBCENTER) is the anchor, her
# registered child relation brings in the child's BUF case.
RULES = f"""
municipality = "e2e"
version = "2026-11-29"

[[rules]]
id = "{RULE}"
version = 1
kind = "family_departments"
title = "{TITLE}"
departments = ["JOBCENTER", "BUF"]
relations = ["parent", "child"]
source = "e2e"

[rules.write_back]
mode = "approval"
marking_system = "fasit"
marking_type = "Sammenhængende borgerforløb"
pathway_case = true
"""


def overlap_run(store_url: str, rules: Path, tmp_path: Path, env: dict[str, str]) -> None:
    """The nightly run as operators start it: ``glasplade overlap run`` in its own process."""
    r = subprocess.run(
        [sys.executable, "-m", "hub.cli.main", "overlap", "run", "--store", store_url,
         "--rules", str(rules), "--as-of", "2026-11-29", "--report-dir", str(tmp_path / "rep")],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, f"overlap run failed: {r.stdout}\n{r.stderr}"
    assert "2 write-back commands planned" in r.stdout, r.stdout  # marking + pathway case


@pytest.fixture
def targets_server(tmp_path, monkeypatch) -> Iterator[tuple[LiveServer, str]]:
    rules = tmp_path / "e2e.toml"
    rules.write_text(RULES, encoding="utf-8")
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    env = {**os.environ, "GLASPLADE_DEV_KEY_FILE": str(tmp_path / "dev.key"),
           "GLASPLADE_CONFIG": str(tmp_path / "none.toml"), "GLASPLADE_LOG_FORMAT": "json"}
    monkeypatch.setenv("GLASPLADE_CONFIG", env["GLASPLADE_CONFIG"])
    hub = bootstrap(Settings(store_url=store_url, dev_key_file=tmp_path / "dev.key",
                             components={"targets": {"rules": str(rules)}}),
                    configure_logging=False)
    try:
        world = populate(hub.store)
        overlap_run(store_url, rules, tmp_path, env)
        with running_server(hub, world) as server:
            yield server, store_url
    finally:
        hub.close()


def _approved(store_url: str) -> list[tuple[str, str, str | None]]:
    engine = readmodel_engine(store_url)
    try:
        with engine.begin() as conn:
            return [(row.kind, row.status, row.decided_by) for row in wb.pending(conn)]
    finally:
        engine.dispose()


def approve_marking(page, server: LiveServer) -> None:
    """As the leader: the list, the explanation with its evidence, then approve the marking."""
    from playwright.sync_api import expect

    base, world = server.base_url, server.world
    login(page, base, "lise")
    page.click("header >> text=Målgrupper")
    expect(page.locator("h1")).to_have_text("Målgrupper")
    listing = page.get_by_test_id("target-list")
    expect(page.locator("section.card h2").first).to_have_text(TITLE)
    expect(page.locator("body")).to_contain_text(f"Regel {RULE} v1")
    mother_row = listing.locator("tr", has=page.locator(
        f"a[href='/maalgrupper/forklaring/{world.mother}']"))
    expect(mother_row).to_contain_text(world.mother[:12])
    expect(listing).not_to_contain_text("Glasmose")  # pseudonyms only on the list
    expect(listing.locator(f"a[href='/maalgrupper/forklaring/{world.hidden}']")).to_have_count(0)

    # The unit filter: the jobcentre unit keeps the family, an unrelated unit empties the list.
    page.select_option("#tg-enhed", "JC-KONT")
    page.click("button:has-text('Vis')")
    expect(listing.locator(f"a[href='/maalgrupper/forklaring/{world.mother}']")).to_have_count(1)
    page.goto(f"{base}/maalgrupper?regel={RULE}&enhed=VOK-VISIT")
    expect(page.get_by_test_id("target-list")).to_contain_text("Ingen borgere matcher reglen")

    # Why is the mother on the list: the rule and the cases behind it.
    page.goto(f"{base}/maalgrupper?regel={RULE}")
    page.click(f"a[href='/maalgrupper/forklaring/{world.mother}']")
    expect(page.locator("h1")).to_have_text("Hvorfor er borgeren på listen?")
    why = page.get_by_test_id("why")
    expect(why).to_have_count(1)
    expect(why).to_contain_text(f"{RULE} (version 1)")
    expect(why.locator(f"a[href='/sag/{world.job_case}/forloeb']")).to_be_visible()
    expect(why.locator(f"a[href='/sag/{world.child_case}/forloeb']")).to_be_visible()
    expect(why).not_to_contain_text(world.adult_case)  # VOKSEN is not one of the departments

    # The planned write-back waits for approval; the leader approves the marking only.
    page.click("text=Tilbage til målgrupper")
    plan = page.get_by_test_id("write-back")
    marking = plan.locator("tr", has_text="Sæt markering").filter(has_text=world.mother[:12])
    expect(marking).to_contain_text("afventer godkendelse")
    expect(marking).to_contain_text("fasit")
    expect(plan.locator("tr", has_text="Opret forløbssag")).not_to_have_count(0)
    marking.get_by_role("checkbox").check()
    page.click("button:has-text('Godkend valgte')")
    page.wait_for_url(f"{base}/maalgrupper")


def test_leader_list_explanation_approval_and_auditor(browser, targets_server):  # noqa: F811
    from playwright.sync_api import expect

    server, store_url = targets_server
    base, world = server.base_url, server.world
    page = browser.new_page()
    page.set_default_timeout(10_000)
    approve_marking(page, server)

    # The approved marking no longer waits; the other commands still do; the store says who.
    plan = page.get_by_test_id("write-back")
    expect(plan.locator("tr", has_text="Sæt markering").filter(has_text=world.mother[:12])
           ).to_have_count(0)
    expect(plan.locator("tr", has_text="Opret forløbssag").first).to_contain_text(
        "afventer godkendelse")
    state = _approved(store_url)
    assert ("SetMarking", "approved", "lise") in state
    assert sum(s == "approved" for _, s, _ in state) == 1, state  # only the one she ticked
    assert ("CreatePathwayCase", "planned", None) in state

    # A caseworker sees the list but cannot approve.
    page.click("button:has-text('Log ud')")
    login(page, base, "anne")
    page.click("header >> text=Målgrupper")
    expect(page.get_by_test_id("write-back")).to_contain_text("afventer godkendelse")
    expect(page.get_by_test_id("write-back").get_by_role("checkbox")).to_have_count(0)
    expect(page.locator("button:has-text('Godkend valgte')")).to_have_count(0)

    # The auditor finds Lise's explanation view of the mother (and only that one) in the log.
    log = auditor_log_of(page, base, "rikke", world.mother_cpr, "Maja Glasmose")
    views = log.locator("tr", has_text="lise").filter(has_text="target-groups")
    expect(views).to_have_count(1)
    expect(views).to_contain_text("målgruppe-afklaring")
    expect(views).to_contain_text("Maja Glasmose")
    page.close()


def test_approved_write_back_is_shown_as_approved(browser, targets_server):  # noqa: F811
    """After approving, the leader sees the command as approved (who and that it is waiting to
    be carried out), not just gone from the list."""
    from playwright.sync_api import expect

    server, store_url = targets_server
    page = browser.new_page()
    page.set_default_timeout(10_000)
    approve_marking(page, server)
    assert ("SetMarking", "approved", "lise") in _approved(store_url)
    # hub/api/routers/targets.py lists only writeback.pending(conn, "planned") and
    # hub/targets/templates/target_groups.html has no words for approved/done/failed: the leader
    # gets no sign that the approval took.
    marking = page.locator("tr", has_text="Sæt markering").filter(
        has_text=server.world.mother[:12])
    expect(marking, "the approved marking should be listed as approved (godkendt) on "
           "/maalgrupper").to_contain_text("godkendt", timeout=2_000)
    page.close()
