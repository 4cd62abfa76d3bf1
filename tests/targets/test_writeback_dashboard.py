"""The new write-back commands on the dashboard: named in Danish, approved by a leader, and a
superseded command shown as such."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa

from hub.targets import writeback as wb
from projections.db import readmodel_engine
from tests.api.conftest import app, client, hub, world  # noqa: F401 (fixtures)
from tests.api.test_pages import csrf_of, page_login

RULE = "odense-buf-bsf-family"


def _record(engine, *commands):
    with engine.begin() as conn:
        wb.record_plan(conn, [(c, "approval") for c in commands], datetime.now(UTC))


def test_other_system_marking_and_update_are_shown_and_approved(client, hub, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TARGETS_RULES", "odense")
    engine = readmodel_engine(hub.settings.effective_readmodel_url)
    mark = wb.SetOtherSystemMarking(
        "SetOtherSystemMarking:r:s1:2026-11-29:a", RULE, "s1" * 8, "fasit",
        "glasplade:r:s1", "Familien har sag i DUBU", ("s1" * 8,), date(2026, 11, 29))
    create = wb.CreatePathwayCase("CreatePathwayCase:r:s1:2026-11-29", RULE, "s1" * 8,
                                  "Sammenhængende borgerforløb (x)", "glasplade:r:s1",
                                  evidence=("case:dubu:1",))
    _record(engine, mark, create)
    with engine.begin() as conn:  # the case was written; then the evidence changes
        conn.execute(wb.WRITEBACK.update().where(
            wb.WRITEBACK.c.command_id == create.command_id).values(status="done"))
    update = wb.UpdatePathwayCase("UpdatePathwayCase:r:s1:2026-11-30:b", RULE, "s1" * 8,
                                  create.title, create.external_key,
                                  evidence=("case:dubu:1", "case:sbsys:2"))
    newer = wb.SetOtherSystemMarking(
        "SetOtherSystemMarking:r:s1:2026-11-30:b", RULE, "s1" * 8, "fasit",
        "glasplade:r:s1", "Familien har sag i DUBU, SBSYS", ("s1" * 8,), date(2026, 11, 30))
    _record(engine, update, newer)

    page_login(client, "lise")
    r = client.get("/maalgrupper")
    assert "Opdatér forløbssag" in r.text and "Markér: sag i andet system" in r.text
    handled = r.text[r.text.find('data-testid="write-back-handled"'):]
    assert "erstattet af nyere" in handled  # the first marking, never approved
    client.post("/maalgrupper/godkend", data={"kommando": [update.command_id, newer.command_id],
                                              "csrf": csrf_of(r.text)})
    with engine.begin() as conn:
        assert sorted(x.kind for x in wb.pending(conn, "approved")) == [
            "SetOtherSystemMarking", "UpdatePathwayCase"]
        assert [x.command_id for x in wb.pending(conn, "superseded")] == [mark.command_id]
    engine.dispose()


def test_approving_first_finds_the_tables_created_once_per_app(app, client, hub, monkeypatch):  # noqa: F811
    """The dashboard creates the write-back tables once per app, also when a leader's approval
    is the app's first request to it; later requests never check for them again."""
    monkeypatch.setenv("TARGETS_RULES", "odense")
    engine = app.state.ctx.service.engine
    assert not sa.inspect(engine).has_table("tg_writeback")
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda conn, cursor, statement, *args: statements.append(statement))
    page_login(client, "lise")
    r = client.post("/maalgrupper/godkend", data={"kommando": "SetMarking:x",
                                                  "csrf": csrf_of(client.get("/").text)},
                    follow_redirects=False)
    assert r.status_code == 303 and sa.inspect(engine).has_table("tg_writeback")
    client.get("/maalgrupper")
    created = len(statements)
    r = client.get("/maalgrupper")
    assert "Ingen handlinger afventer." in r.text  # the record read (empty)
    client.post("/maalgrupper/godkend", data={"kommando": "SetMarking:x", "csrf": csrf_of(r.text)})
    later = statements[created:]
    assert later and not [s for s in later if "table_info" in s or "CREATE" in s.upper()]
