"""``glasplade overlap ...`` (the nightly run), ``glasplade targets ...`` (rules and lists) and
``glasplade mi ...`` (management information export)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import typer

from hub.cli.common import build_hub, current_user, print_json, print_table, record_access
from hub.logging import get_logger
from hub.sql import create_all

overlap_app = typer.Typer(no_args_is_help=True, help="The nightly overlap run.")
targets_app = typer.Typer(no_args_is_help=True, help="Target-group rules and lists.")
mi_app = typer.Typer(no_args_is_help=True, help="Management information (ledelsesinformation).")

StoreOpt = typer.Option(None, "--store", envvar="GLASPLADE_STORE_URL",
                        help="sqlite:///path.db or postgresql://user@host:port/db")
RulesOpt = typer.Option(None, "--rules", help="Municipality (deploy/rules/<name>.toml) or a "
                        "rule file; default: [components.targets] rules, else odense")
log = get_logger("glasplade.targets")


def register(app: typer.Typer) -> None:
    app.add_typer(overlap_app, name="overlap")
    app.add_typer(targets_app, name="targets")
    app.add_typer(mi_app, name="mi")


def _parts(hub):  # noqa: ANN001, ANN202
    from projections.db import readmodel_engine
    from projections.target_groups import TargetGroupsProjection
    return (readmodel_engine(hub.settings.effective_readmodel_url),
            TargetGroupsProjection(hub.store.person_key))


def _rules(hub, rules: str | None):  # noqa: ANN001, ANN202
    from hub.targets.loader import RuleFileError, load_rules
    try:
        return load_rules(rules or hub.settings.component("targets", "rules", "odense"))
    except RuleFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def next_run(now: datetime, hhmm: str) -> datetime:
    """The next moment at ``HH:MM`` (UTC) strictly after ``now``."""
    try:
        hour, minute = (int(x) for x in hhmm.split(":"))
        candidate = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError:
        raise typer.BadParameter(f"expected HH:MM, got {hhmm!r}") from None
    return candidate if candidate > now else candidate + timedelta(days=1)


def schedule(hhmm: str, job: Callable[[], None], *, max_runs: int | None = None,
             clock: Callable[[], datetime] = lambda: datetime.now(UTC),
             sleep: Callable[[float], None] = time.sleep) -> int:
    """Run ``job`` every day at ``hhmm``. A failed run is logged and the next one still comes;
    returns the number of failed runs (after ``max_runs`` runs, for tests)."""
    runs = failures = 0
    while max_runs is None or runs < max_runs:
        wait = (next_run(clock(), hhmm) - clock()).total_seconds()
        log.info("overlap run scheduled", at=hhmm, in_seconds=round(wait))
        sleep(max(wait, 0))
        runs += 1
        try:
            job()
        except Exception as exc:  # keep the scheduler alive; the error is in the log
            failures += 1
            log.error("overlap run failed", error=type(exc).__name__, detail=str(exc)[:200])
    return failures


@overlap_app.command("run")
def overlap_run(
    rules: str = RulesOpt,
    report_dir: Path = typer.Option(Path("reports"), help="Where the HTML and CSV go"),
    as_of: str = typer.Option(None, help="Evaluate as of this date (YYYY-MM-DD); default now"),
    schedule_at: str = typer.Option(None, "--schedule", help="Stay running; run daily at HH:MM "
                                    "(UTC)"),
    store: str = StoreOpt,
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Evaluate every rule, record new and ended matches and identity overlaps, write a report.

    Exit status: 0 when the run completed (with or without changes); 1 on failure.
    """
    from hub.targets import writeback as wb
    from hub.targets.nightly import run_overlap

    def once() -> None:
        hub = build_hub(store)
        engine, projection = _parts(hub)
        try:
            rule_set = _rules(hub, rules)
            moment = (datetime.combine(date.fromisoformat(as_of), datetime.min.time(), UTC)
                      if as_of else datetime.now(UTC))
            n_planned = 0

            def record_commands(result) -> None:  # noqa: ANN001
                nonlocal n_planned
                planned = wb.plan(rule_set, result.started, result.ended, moment.date(),
                                  result.current)
                with engine.begin() as conn:
                    n_planned = wb.record_plan(conn, planned, datetime.now(UTC))

            result = run_overlap(hub.store, engine, rule_set, moment, projection, report_dir,
                                 before_record=record_commands)
        finally:
            engine.dispose()
            hub.close()
        summary = {"municipality": result.municipality, "as_of": result.as_of,
                   "matches": len(result.current), "started": len(result.started),
                   "ended": len(result.ended), "identity_overlaps": len(result.overlaps),
                   "overlaps_detected": len(result.overlaps_detected),
                   "overlaps_resolved": len(result.overlaps_resolved),
                   "events_stored": result.events_stored, "write_back_planned": n_planned,
                   "reports": [str(p) for p in result.report_files],
                   "seconds": {k: round(v, 3) for k, v in result.timings.items()}}
        if json_out:
            print_json(summary)
        else:
            typer.echo(f"{summary['matches']} matches: {summary['started']} new, "
                       f"{summary['ended']} ended; identity overlaps {summary['identity_overlaps']}"
                       f" ({summary['overlaps_detected']} new, {summary['overlaps_resolved']} "
                       f"resolved); {summary['events_stored']} events recorded")
            for p in summary["reports"]:
                typer.echo(f"report: {p}")
            if n_planned:
                typer.echo(f"{n_planned} write-back commands planned "
                           "(glasplade targets writeback list)")

    if schedule_at:
        next_run(datetime.now(UTC), schedule_at)  # validate before waiting
        schedule(schedule_at, once)
        return
    try:
        once()
    except typer.Exit:
        raise
    except Exception as exc:
        typer.echo(f"error: overlap run failed: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None


@targets_app.command("validate")
def targets_validate(paths: list[Path] = typer.Argument(..., help="Rule files (TOML)")) -> None:
    """Check rule files; errors name the file, line and field. Exit 1 if any is invalid."""
    from hub.targets.loader import RuleFileError, load_rule_file
    bad = 0
    for path in paths:
        try:
            rs = load_rule_file(path)
            typer.echo(f"{path}: ok ({rs.municipality} {rs.version}, {len(rs.rules)} rules)")
        except RuleFileError as exc:
            bad += 1
            typer.echo(f"error: {exc}", err=True)
    if bad:
        raise typer.Exit(1)


@targets_app.command("list")
def targets_list(rule: str = typer.Argument(..., help="Rule id"),
                 unit: str = typer.Option(None, help="Only matches with a case/grant in this "
                                          "unit"),
                 limit: int = typer.Option(100), store: str = StoreOpt,
                 json_out: bool = typer.Option(False, "--json")) -> None:
    """Who matches a rule now (pseudonyms), since when and why."""
    from hub.targets.queries import match_list
    hub = build_hub(store)
    engine, projection = _parts(hub)
    try:
        create_all(engine, projection.metadata)
        with engine.connect() as conn:
            rows = match_list(conn, projection, rule, unit, limit)
    finally:
        engine.dispose()
        hub.close()
    if json_out:
        print_json([dataclasses.asdict(r) for r in rows])
        return
    print_table(["subject", "since", "explanation"],
                [[r.subject[:16], r.since, r.explanation] for r in rows])


@targets_app.command("why")
def targets_why(person: str = typer.Option(..., "--person", help="CPR or substitute number"),
                purpose: str = typer.Option("målgruppe-afklaring", help="Why you look (logged)"),
                store: str = StoreOpt) -> None:
    """Why is this person on a list: every open match with its evidence (the look is logged)."""
    from hub.targets.queries import person_matches
    hub = build_hub(store)
    engine, projection = _parts(hub)
    try:
        record_access(hub, person, user=current_user(), purpose=purpose, view="target-groups")
        create_all(engine, projection.metadata)
        with engine.connect() as conn:
            rows = person_matches(conn, projection, hub.store.person_key(person))
    finally:
        engine.dispose()
        hub.close()
    if not rows:
        typer.echo("no open matches")
    for r in rows:
        typer.echo(f"{r.rule_id} (v{r.rule_version}) since {r.since}: {r.explanation}")
        for item in r.evidence:
            typer.echo(f"  {item}")


@mi_app.command("export")
def mi_export(
    report: list[str] = typer.Argument(None, help="Reports (default: all): pathways, "
                                       "pathway-summary, tovholdere, caseload, "
                                       "cases-by-paragraph, grants-by-paragraph, decision-time, "
                                       "followup-compliance"),
    start: str = typer.Option(None, "--from", help="Period start YYYY-MM-DD (default: Jan 1)"),
    end: str = typer.Option(None, "--to", help="Period end YYYY-MM-DD (default: today)"),
    unit: str = typer.Option(None, help="Only this unit"),
    out: Path = typer.Option(Path("mi"), help="Directory for the CSV files"),
    store: str = StoreOpt,
) -> None:
    """Management figures as CSV files (one per report), brought up to date first."""
    from hub.targets.cadence import load_cadences
    from hub.targets.feed import catch_up
    from hub.targets.mi import REPORTS, Filter
    from projections.db import readmodel_engine
    from projections.management import ManagementProjection

    names = report or list(REPORTS)
    unknown = [n for n in names if n not in REPORTS]
    if unknown:
        typer.echo(f"error: unknown report(s) {', '.join(unknown)}", err=True)
        raise typer.Exit(1)
    today = datetime.now(UTC).date()
    try:
        f = Filter(date.fromisoformat(start) if start else today.replace(month=1, day=1),
                   date.fromisoformat(end) if end else today, unit, load_cadences())
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    hub = build_hub(store)
    engine = readmodel_engine(hub.settings.effective_readmodel_url)
    projection = ManagementProjection(hub.store.person_key)
    try:
        catch_up(hub.store, engine, projection)
        out.mkdir(parents=True, exist_ok=True)
        with engine.connect() as conn:
            for name in names:
                table = REPORTS[name](conn, projection, f)
                path = out / f"{name}.csv"
                table.write_csv(path)
                typer.echo(f"{path}: {len(table.rows)} rows")
    finally:
        engine.dispose()
        hub.close()


writeback_app = typer.Typer(no_args_is_help=True,
                            help="Write-back commands: list, approve, execute.")
targets_app.add_typer(writeback_app, name="writeback")


@writeback_app.command("list")
def writeback_list(status: str = typer.Option(None, help="planned, approved, done, failed"),
                   store: str = StoreOpt, json_out: bool = typer.Option(False, "--json")) -> None:
    """Planned and written commands (subjects as pseudonyms)."""
    from hub.targets import writeback as wb
    hub = build_hub(store)
    engine, _ = _parts(hub)
    try:
        wb.create_tables(engine)
        with engine.begin() as conn:
            rows = wb.pending(conn, status)
    finally:
        engine.dispose()
        hub.close()
    data = [{"command_id": r.command_id, "kind": r.kind, "system": r.system, "mode": r.mode,
             "status": r.status, "attempts": r.attempts, "last_error": r.last_error,
             "result": r.result, "written_at": r.written_at} for r in rows]
    if json_out:
        print_json(data)
        return
    print_table(["command", "mode", "status", "attempts", "written_at", "error"],
                [[d["command_id"], d["mode"], d["status"], d["attempts"], d["written_at"],
                  d["last_error"] or ""] for d in data])


@writeback_app.command("approve")
def writeback_approve(command_ids: list[str] = typer.Argument(...),
                      store: str = StoreOpt) -> None:
    """Approve planned commands of rules in approval mode (the approver is recorded)."""
    from hub.targets import writeback as wb
    hub = build_hub(store)
    engine, _ = _parts(hub)
    try:
        wb.create_tables(engine)
        with engine.begin() as conn:
            n = wb.approve(conn, command_ids, current_user(), datetime.now(UTC))
    finally:
        engine.dispose()
        hub.close()
    typer.echo(f"approved {n} of {len(command_ids)}")
    if n != len(command_ids):
        raise typer.Exit(1)


@writeback_app.command("execute")
def writeback_execute(store: str = StoreOpt) -> None:
    """Write approved and automatic commands to the fagsystemer; failed ones are retried.

    Exit status 1 if any command failed this time.
    """
    from hub.targets import writeback as wb
    from hub.targets.writers import cpr_from_store, writers_from_settings
    hub = build_hub(store)
    engine, _ = _parts(hub)
    writers = writers_from_settings(hub.settings)
    try:
        counts = wb.execute(engine, writers, cpr_from_store(hub.store),
                            lambda: datetime.now(UTC), record=hub.store.append)
    finally:
        writers.close()
        engine.dispose()
        hub.close()
    typer.echo(f"written {counts['done']}, failed {counts['failed']}")
    if counts["failed"]:
        raise typer.Exit(1)
