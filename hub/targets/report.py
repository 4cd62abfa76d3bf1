"""The overlap report of one nightly run: HTML (Danish, Jinja2) for people, CSV for spreadsheets.

Subjects appear as pseudonyms only; a caseworker opens a person through the dashboard, where the
access is logged.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import jinja2
import sqlalchemy as sa

from hub.domain import rules as r
from projections.target_groups import TargetGroupsProjection

HTML_ROW_LIMIT = 500
CSV_HEADER = ["status", "regel", "regelversion", "titel", "borger", "gruppe", "siden",
              "forklaring", "evidens"]


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined)


def write_reports(conn: sa.Connection, p: TargetGroupsProjection, rule_set: r.RuleSet,
                  result, report_dir: Path) -> list[Path]:  # noqa: ANN001 (RunResult)
    """What changed since the previous run (new and ended matches, identity overlaps), with the
    number of matches per rule. The full lists are in the dashboard and ``glasplade targets
    list``; the report stays small however large the municipality."""
    report_dir.mkdir(parents=True, exist_ok=True)
    stamp = result.as_of.strftime("%Y-%m-%dT%H%M")
    base = report_dir / f"overlap-{rule_set.municipality}-{stamp}"
    csv_path, html_path = base.with_suffix(".csv"), base.with_suffix(".html")
    rules = {x.rule_id: x for x in rule_set.rules}
    started = [{"rule_id": m.rule_id, "rule_version": m.rule_version, "subject": m.subject,
                "group_key": m.group_key, "explanation": r.explain(rules[m.rule_id], m),
                "evidence": ", ".join(m.evidence)} for m in result.started]
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(CSV_HEADER)
        for x in started:
            w.writerow(["ny", x["rule_id"], x["rule_version"], rules[x["rule_id"]].title,
                        x["subject"], x["group_key"], result.as_of.isoformat(),
                        x["explanation"], x["evidence"]])
        for x in result.ended:
            w.writerow(["ophørt", x.rule_id, x.rule_version,
                        rules[x.rule_id].title if x.rule_id in rules else "", x.subject, "",
                        "", x.reason, ""])
        for o in sorted(result.overlaps_detected, key=lambda o: o.overlap_id):
            w.writerow(["nyt identitetsoverlap", o.kind, "", "", o.subject, o.overlap_id,
                        result.as_of.isoformat(), o.explanation, ", ".join(o.evidence)])
        for overlap_id in result.overlaps_resolved:
            w.writerow(["løst identitetsoverlap", "", "", "", "", overlap_id, "", "", ""])
    active = Counter(rule_id for rule_id, _ in result.current)
    new = Counter(x.rule_id for x in result.started)
    ended = Counter(x.rule_id for x in result.ended)
    summary = [{"rule_id": x.rule_id, "title": x.title, "source": x.source,
                "active": active[x.rule_id], "new": new[x.rule_id], "ended": ended[x.rule_id]}
               for x in rule_set.rules]
    html = _environment().get_template("overlap_report.html").render(
        municipality=rule_set.municipality, version=rule_set.version,
        as_of=result.as_of, summary=summary,
        started=started[:HTML_ROW_LIMIT], n_started=len(result.started),
        ended=result.ended[:HTML_ROW_LIMIT], n_ended=len(result.ended),
        overlaps_detected=result.overlaps_detected[:HTML_ROW_LIMIT],
        overlaps_resolved=result.overlaps_resolved[:HTML_ROW_LIMIT],
        n_overlaps=len(result.overlaps), limit=HTML_ROW_LIMIT, csv_name=csv_path.name)
    html_path.write_text(html, encoding="utf-8")
    return [html_path, csv_path]
