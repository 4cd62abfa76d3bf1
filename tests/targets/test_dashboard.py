"""The Danish target-group and management pages through the real app (H5b's app factory)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from hub.targets import writeback as wb
from hub.targets.loader import load_rules
from hub.targets.nightly import run_overlap
from projections.db import readmodel_engine
from projections.target_groups import TargetGroupsProjection
from tests.api.conftest import app, client, hub, world  # noqa: F401 (fixtures)
from tests.api.test_pages import csrf_of, page_login

RULE = "frederikssund-flere-myndighedsomraader"


@pytest.fixture
def nightly(hub, world, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TARGETS_RULES", "frederikssund")
    engine = readmodel_engine(hub.settings.effective_readmodel_url)
    rules = load_rules("frederikssund")
    result = run_overlap(hub.store, engine, rules, datetime(2026, 11, 29, 2, tzinfo=UTC),
                         TargetGroupsProjection(hub.store.person_key))
    subject = next(m.subject for m in result.started if m.rule_id == RULE)
    command = wb.SetMarking(f"SetMarking:{RULE}:{subject}:2026-11-29", RULE, subject, "fasit",
                            "Sammenhængende borgerforløb", date(2026, 11, 29))
    with engine.begin() as conn:
        wb.record_plan(conn, [(command, "approval")], datetime.now(UTC))
    yield subject, command, engine
    engine.dispose()


def test_list_explanation_and_leader_approval(client, nightly, hub):  # noqa: F811
    subject, command, engine = nightly
    assert subject == world_mother_key(hub)
    page_login(client, "lise")
    r = client.get("/maalgrupper", params={"regel": RULE})
    assert r.status_code == 200 and "Målgrupper" in r.text
    assert f"/maalgrupper/forklaring/{subject}" in r.text and "Aktive sager i mindst 2" in r.text
    assert "Maja" not in r.text  # pseudonyms only on the list
    r = client.get("/maalgrupper", params={"regel": RULE, "enhed": "VOK-VISIT"})
    assert f"/maalgrupper/forklaring/{subject}" not in r.text  # filtered by unit
    listed = [e for e in hub.store.person_events(person_key=subject)
              if e.event_type == "PersonRecordAccessed"
              and e.payload.view == "target-group-list"]
    assert [e.payload.user_id for e in listed] == ["lise"]  # the list that showed them, once

    why = client.get(f"/maalgrupper/forklaring/{subject}")
    assert why.status_code == 200 and "Hvorfor er borgeren på listen" in why.text
    assert "fasit:F-100" in why.text and "cura:C-200" in why.text
    views = [e for e in hub.store.person_events(person_key=subject)
             if e.event_type == "PersonRecordAccessed" and e.payload.view == "target-groups"]
    assert len(views) == 1 and views[0].payload.user_id == "lise"

    r = client.get("/maalgrupper")
    assert "Godkend valgte" in r.text and "Sæt markering" in r.text
    r = client.post("/maalgrupper/godkend",
                    data={"kommando": command.command_id, "csrf": csrf_of(r.text)})
    assert r.status_code == 200  # redirected back to the list
    with engine.begin() as conn:
        (row,) = wb.pending(conn, "approved")
    assert row.decided_by == "lise"


def _handled_table(html: str) -> str:
    start = html.find('data-testid="write-back-handled"')
    return html[start:html.index("</table>", start)] if start >= 0 else ""


def test_approved_done_and_failed_commands_stay_visible(client, nightly):  # noqa: F811
    """After approval the command leaves the waiting list and shows who approved it, then
    whether it was carried out or failed (and how often it was tried)."""
    _, command, engine = nightly
    page_login(client, "lise")
    r = client.get("/maalgrupper")
    assert _handled_table(r.text) == "" and "Ingen godkendte eller udførte" in r.text
    client.post("/maalgrupper/godkend", data={"kommando": command.command_id,
                                              "csrf": csrf_of(r.text)})
    table = _handled_table(client.get("/maalgrupper").text)
    assert "Sæt markering" in table and "godkendt, afventer udførelse" in table
    assert "lise" in table and command.subject[:12] in table
    for status, attempts, shown in (("failed", 2, "fejlet (forsøg 2)"), ("done", 3, "udført")):
        with engine.begin() as conn:  # as wb.execute leaves it after a write
            conn.execute(wb.WRITEBACK.update().values(status=status, attempts=attempts,
                                                      written_at=datetime.now(UTC)))
        table = _handled_table(client.get("/maalgrupper").text)
        assert shown in table and "lise" in table and "godkendt" not in table


def test_caseworker_cannot_approve_and_stale_form_is_refused(client, nightly):  # noqa: F811
    _, command, engine = nightly
    page_login(client, "anne")
    r = client.get("/maalgrupper")
    assert "Godkend valgte" not in r.text
    r = client.post("/maalgrupper/godkend",
                    data={"kommando": command.command_id, "csrf": csrf_of(r.text)})
    assert r.status_code == 403
    r = client.post("/maalgrupper/godkend", data={"kommando": command.command_id,
                                                  "csrf": "forged"})
    assert r.status_code == 403
    with engine.begin() as conn:
        assert wb.pending(conn, "approved") == []


def test_management_page_and_bad_dates(client, nightly):  # noqa: F811
    page_login(client, "lise")
    r = client.get("/ledelsesinformation", params={"fra": "2025-01-01", "til": "2026-11-29"})
    assert r.status_code == 200 and "Sager pr. paragraf og enhed" in r.text
    assert "JC-KONT" in r.text and "Sagstal pr. sagsbehandler og team" in r.text
    assert client.get("/ledelsesinformation", params={"fra": "2025-13-01"}).status_code == 400


def world_mother_key(hub) -> str:  # noqa: F811
    from tests.api.world import populate  # noqa: F401 (documents where the mother comes from)
    keys = {e.person_key for e in hub.store.read(limit=1000)
            if e.event_type == "CaseOpened" and e.case_key == "fasit:F-100"}
    return keys.pop()
