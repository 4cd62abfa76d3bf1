"""Management information from events: pathways, meetings, caseload, paragraphs, cadences."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from typer.testing import CliRunner

from hub.cli.main import app
from hub.domain import events as ev
from hub.ingest.validate import LOCAL_TZ
from hub.targets.cadence import Cadence, compliance, due_dates, load_cadences
from hub.targets.feed import catch_up
from hub.targets.mi import REPORTS, Filter
from projections.db import readmodel_engine
from projections.management import ManagementProjection
from tests.targets import builders as b

YOUNG = b.cpr(date(2009, 1, 10), 4)   # 16 on 2025-01-10, 17½ on 2026-07-10
PARENT = b.cpr(date(1985, 2, 2), 5)
D = lambda *a: datetime(*a, 9, 0, tzinfo=UTC)  # noqa: E731


def _events():
    return [
        b.person(YOUNG, date(2009, 1, 10)), b.person(PARENT, date(1985, 2, 2)),
        b.open_case(YOUNG, "dubu:S-1", "BUF", "BUF-MYN-N"),
        b.event(ev.CaseworkerAssigned("cw-1", "Sagsbehandler", "BUF-MYN-N"), person=YOUNG,
                case="dubu:S-1"),
        b.open_case(PARENT, "fasit:F-1", "BSF", "BSF-RAAD"),
        b.grant(PARENT, "fasit:F-1", "G-1", "BSF-RAAD", applied=date(2026, 2, 1),
                decided=date(2026, 2, 21)),
        b.grant(YOUNG, "dubu:S-1", "G-2", "BUF-MYN-N", paragraph="32", law="BL",
                applied=date(2026, 3, 1), decided=date(2026, 3, 11)),
        b.event(ev.PathwayStarted("P-1", "BUF-MYN-N", "Myndighed Nord", "odense",
                                  (YOUNG, PARENT)), person=YOUNG, source="glasplade",
                at=D(2025, 1, 1)),
        b.event(ev.PathwayTovholderAssigned("P-1", "cw-1", "Tovholder", "BUF-MYN-N"),
                person=YOUNG, source="glasplade", at=D(2025, 1, 2)),
        b.event(ev.PathwayMeetingHeld("P-1", "ungemoede-16", True), person=YOUNG,
                source="glasplade", at=D(2025, 1, 20)),
        b.event(ev.PathwayPlanUpdated("P-1", "plan", 2), person=YOUNG, source="glasplade",
                at=D(2025, 2, 1)),
        b.event(ev.PathwayPlanUpdated("P-1", "plan", 4), person=YOUNG, source="glasplade",
                at=D(2026, 2, 1)),
        b.event(ev.PathwayStarted("P-2", "BSF-RAAD", "Rådgivningshuset", None, (PARENT,)),
                person=PARENT, source="glasplade", at=D(2026, 1, 1)),
        b.event(ev.PathwayClosed("P-2", "selvforsørgende"), person=PARENT, source="glasplade",
                at=D(2026, 3, 2)),
    ]


@pytest.fixture
def mi(store, store_url):
    store.append(_events())
    engine = readmodel_engine(store_url)
    p = ManagementProjection(store.person_key)
    catch_up(store, engine, p)
    with engine.connect() as conn:
        yield conn, p
    engine.dispose()


PERIOD = Filter(date(2026, 1, 1), date(2026, 11, 29), cadences=load_cadences())


def test_pathways_anchor_tovholder_duration_progression_and_youth_meetings(mi):
    conn, p = mi
    t = REPORTS["pathways"](conn, p, PERIOD)
    rows = {r[0]: dict(zip(t.headers, r, strict=True)) for r in t.rows}
    assert rows["P-1"]["tovholder"] == "cw-1" and rows["P-1"]["forankring"] == "BUF-MYN-N"
    assert (rows["P-1"]["progression_start"], rows["P-1"]["progression_nu"]) == (2, 4)
    assert rows["P-1"]["moede_ungemoede-16"] == "ja"
    assert rows["P-1"]["moede_ungemoede-17.5"] == "nej"  # 17½ on 2026-07-10, not held
    assert rows["P-2"]["varighed_dage"] == 60 and rows["P-2"]["lukkeaarsag"] == "selvforsørgende"
    assert rows["P-2"]["moede_ungemoede-16"] == ""  # no young member: not applicable
    summary = REPORTS["pathway-summary"](conn, p, PERIOD)
    assert ("BSF-RAAD", 1, 1, 1, 60.0) in summary.rows
    assert REPORTS["tovholdere"](conn, p, PERIOD).rows == [("cw-1", "BUF-MYN-N", 1)]
    only_bsf = REPORTS["pathways"](conn, p, Filter(PERIOD.start, PERIOD.end, "BSF-RAAD"))
    assert [r[0] for r in only_bsf.rows] == ["P-2"]


def test_caseload_paragraphs_and_decision_time(mi):
    conn, p = mi
    assert REPORTS["caseload"](conn, p, PERIOD).rows == [("BUF-MYN-N", "cw-1", 1, "nej")]
    grants = REPORTS["grants-by-paragraph"](conn, p, PERIOD).rows
    assert ("SEL", "85", "BSF-RAAD", 1, 0) in grants
    dt = {r[:3]: r[3:] for r in REPORTS["decision-time"](conn, p, PERIOD).rows}
    assert dt[("SEL", "85", "BSF-RAAD")] == (1, 20.0, 20, 20)
    assert dt[("BL", "32", "BUF-MYN-N")][0] == 1
    assert REPORTS["decision-time"](conn, p, Filter(date(2026, 3, 1), date(2026, 3, 31))
                                    ).rows[0][:3] == ("BL", "32", "BUF-MYN-N")


def test_cadence_due_dates_and_compliance():
    placement = Cadence("anbringelse", 14, 42, 182, grace_days=7)
    opened = D(2025, 1, 1)
    due = due_dates(placement, opened, D(2026, 9, 1))
    gaps = [(b2 - a).days for a, b2 in zip(due, due[1:], strict=False)]
    assert (due[0] - opened).days == 14 and gaps[0] == 42 and gaps[-1] == 182
    assert all(g in (42, 182) for g in gaps)
    preventive = Cadence("forebyggende", 28, 91, grace_days=7)
    held = [opened + timedelta(days=30), opened + timedelta(days=200)]
    result = compliance(preventive, opened, D(2025, 9, 1), held)
    assert [ok for _, ok in result] == [True, False, True]  # day 28 (held 30), 119, 210


def test_followup_compliance_from_events(store, store_url):
    store.append([b.open_case(YOUNG, "dubu:S-9", "BUF"),
                  b.event(ev.CaseActionRecorded("a1", "follow_up"), person=YOUNG, case="dubu:S-9",
                          at=b.T0 + timedelta(days=29))])
    # b.open_case uses case_type "sag": give it a cadence under that name
    engine = readmodel_engine(store_url)
    p = ManagementProjection(store.person_key)
    catch_up(store, engine, p)
    f = Filter(date(2026, 1, 1), date(2026, 6, 30),
               cadences={"sag": Cadence("sag", 28, 91, grace_days=7)})
    with engine.connect() as conn:
        rows = REPORTS["followup-compliance"](conn, p, f).rows
    engine.dispose()
    assert rows == [("U1", "sag", 2, 1, 50.0)]


def test_mi_export_cli_writes_csv(store_url, tmp_path):
    from tests.conftest import make_store
    s = make_store(store_url)
    s.append(_events())
    s.close()
    r = CliRunner().invoke(app, ["mi", "export", "--store", store_url, "--from", "2026-01-01",
                                 "--to", "2026-11-29", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "pathways.csv").read_text().startswith("forloeb;forankring")
    assert len(list(tmp_path.glob("*.csv"))) == len(REPORTS)
    bad = CliRunner().invoke(app, ["mi", "export", "nope", "--store", store_url])
    assert bad.exit_code == 1
    bad_date = CliRunner().invoke(app, ["mi", "export", "--from", "2026-13-01", "--store",
                                        store_url])
    assert bad_date.exit_code == 1


def test_bad_cadence_file_is_reported(tmp_path):
    from hub.targets.loader import RuleFileError
    bad = tmp_path / "c.toml"
    bad.write_text('[[cadences]]\ncase_type = "x"\nfirst_days = 0\nevery_days = 7\n')
    with pytest.raises(RuleFileError, match=r"cadences\[0\].first_days"):
        load_cadences(bad)
    bad.write_text('[[cadences]]\ncase_type = "x"\nevery = 7\n')
    with pytest.raises(RuleFileError, match="unexpected keyword"):
        load_cadences(bad)
    assert set(load_cadences()) == {"anbringelse", "forebyggende"}


def test_a_case_opened_on_new_years_day_counts_in_january(store, store_url):
    """A fagsystem that gives only a date puts the event at local midnight (23:00 UTC the day
    before): the figures count Danish days, on both backends."""
    who = b.cpr(date(1985, 2, 2), 5)
    store.append([b.person(who, date(1985, 2, 2)),
                  b.event(ev.CaseOpened("BSF", "BSF-RAAD", "BSF-RAAD", "sag", "open", law="SEL",
                                        paragraph="85"),
                          person=who, case="fasit:F-1", source="fasit",
                          at=datetime(2026, 1, 1, tzinfo=LOCAL_TZ))])
    engine = readmodel_engine(store_url)
    p = ManagementProjection(store.person_key)
    catch_up(store, engine, p)
    try:
        with engine.connect() as conn:
            t = REPORTS["cases-by-paragraph"](conn, p, Filter(date(2026, 1, 1),
                                                              date(2026, 1, 31)))
    finally:
        engine.dispose()
    assert t.rows == [("SEL", "85", "BSF-RAAD", 1, 1)]  # active at the end, opened in January
