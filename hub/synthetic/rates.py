"""The knobs of the synthetic municipality: population shape, units, and one ``Service`` per
kind of case, with its rate per 100,000 inhabitants (sources in docs/synthetic.md and
/shared/design/population.md; figures marked *estimate* there are reasoned guesses).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

#: Barnets Lov replaced the children's provisions of Serviceloven on this date.
BARNETS_LOV_FROM = date(2024, 1, 1)
#: Case actions are generated from this date (the hub's history starts here).
HISTORY_FROM = date(2021, 1, 1)


@dataclass(frozen=True, slots=True)
class UnitSpec:
    unit_id: str
    name: str
    department: str
    system: str
    caseload: int  # cases per caseworker (DS 2023; guidelines in population.md)


UNITS: tuple[UnitSpec, ...] = (
    UnitSpec("BUF-MYN-N", "Myndighed Børn og Familie, team Nord", "BUF", "dubu", 28),
    UnitSpec("BUF-MYN-S", "Myndighed Børn og Familie, team Syd", "BUF", "dubu", 28),
    UnitSpec("BUF-UNDERRET", "Modtagelsen (underretninger)", "BUF", "dubu", 80),
    UnitSpec("BUF-UNGE", "Ungekontakten, Center for Familie og Rådgivning", "BUF", "dubu", 30),
    UnitSpec("BSF-MISBRUG", "Misbrugscenter Glasby", "BSF", "fasit", 40),
    UnitSpec("BSF-PENSION", "Pension og sociale ydelser", "BSF", "fasit", 120),
    UnitSpec("BSF-RAAD", "Rådgivningshuset, Center for Job og Rådgivning", "BSF", "fasit", 40),
    UnitSpec("JC-KONT", "Jobcenter, kontanthjælp", "JOBCENTER", "fasit", 35),
    UnitSpec("JC-SYG", "Jobcenter, sygedagpenge", "JOBCENTER", "fasit", 40),
    UnitSpec("JC-RF", "Jobcenter, ressourceforløb", "JOBCENTER", "fasit", 30),
    UnitSpec("VOK-STOTTE", "Voksenstøtte", "VOKSEN", "cura", 55),
    UnitSpec("VOK-VISIT", "Visitation, hjemmepleje", "VOKSEN", "cura", 250),
)
UNIT_BY_ID = {u.unit_id: u for u in UNITS}


@dataclass(frozen=True, slots=True)
class Cadence:
    """Follow-ups: first after ``first_days``, then every ``every_days`` in year 1, then
    every ``later_days``. ``miss`` is the share of follow-ups that never happen, ``late`` the
    share held 1-6 weeks late (realistic misses)."""

    first_days: int
    every_days: int
    later_days: int
    miss: float = 0.12
    late: float = 0.2


@dataclass(frozen=True, slots=True)
class Service:
    key: str
    per_100k: float              # active at as_of
    age: tuple[int, int]         # eligible age range (inclusive) at as_of
    units: tuple[str, ...]       # unit ids, chosen at random (first match)
    case_type: str
    title: str
    law: str
    paragraph: str
    grant_kind: str              # service, benefit, intervention
    grant_titles: tuple[str, ...]
    mean_years: float            # mean length of an episode
    closed_factor: float         # episodes that ended in the history window, per active one
    vulnerable_share: float      # share of recipients from vulnerable households
    old_law: tuple[str, str] | None = None  # (law, paragraph) before Barnets Lov
    cadence: Cadence | None = None
    notes_per_year: float = 2.0
    decision_days: tuple[int, int] = (7, 42)   # application -> decision
    hours: tuple[float, float] | None = None   # hours per week range
    monthly_rate: tuple[int, int] | None = None
    history_years: float | None = None         # closed episodes only this far back
    mirror_share: float = 0.0                  # also registered as an SBSYS ESDH case


SERVICES: tuple[Service, ...] = (
    # --- children and family (BUF, DUBU) ------------------------------------------------------
    Service("placement", 233, (0, 22), ("BUF-MYN-N", "BUF-MYN-S"), "anbringelse",
            "Anbringelse uden for hjemmet", "BL", "46", "intervention",
            ("Anbringelse i plejefamilie", "Anbringelse på opholdssted",
             "Anbringelse på døgninstitution", "Netværksanbringelse"),
            mean_years=4.5, closed_factor=0.5, vulnerable_share=0.75,
            old_law=("SEL", "52, stk. 3, nr. 7"), cadence=Cadence(14, 42, 182),
            notes_per_year=6, decision_days=(14, 60), mirror_share=0.35),
    Service("preventive", 756, (0, 22), ("BUF-MYN-N", "BUF-MYN-S"), "forebyggende",
            "Forebyggende foranstaltning", "BL", "32", "intervention",
            ("Familiebehandling", "Fast kontaktperson", "Aflastning", "Praktisk pædagogisk støtte"),
            mean_years=1.4, closed_factor=1.5, vulnerable_share=0.75,
            old_law=("SEL", "52, stk. 3"), cadence=Cadence(28, 91, 91),
            notes_per_year=5, decision_days=(14, 56), mirror_share=0.35),
    Service("notification", 0, (0, 17), ("BUF-UNDERRET",), "underretning",
            "Underretning modtaget", "BL", "133", "none", (),
            mean_years=0.06, closed_factor=0, vulnerable_share=0.7,
            old_law=("SEL", "153"), notes_per_year=12, history_years=1.0),
    # --- employment (JOBCENTER, Fasit) -------------------------------------------------------
    Service("cash_benefit_activity_ready", 1210, (18, 66), ("JC-KONT",), "kontanthjaelp",
            "Kontanthjælp, aktivitetsparat", "LAS", "11", "benefit", ("Kontanthjælp",),
            mean_years=3.5, closed_factor=0.6, vulnerable_share=0.7,
            cadence=Cadence(30, 91, 182), notes_per_year=3, decision_days=(5, 28),
            monthly_rate=(12_000, 16_500)),
    Service("cash_benefit_job_ready", 300, (18, 66), ("JC-KONT",), "kontanthjaelp",
            "Kontanthjælp, jobparat", "LAS", "11", "benefit", ("Kontanthjælp",),
            mean_years=0.7, closed_factor=1.5, vulnerable_share=0.4,
            notes_per_year=3, decision_days=(5, 21), monthly_rate=(12_000, 16_500)),
    Service("sickness_benefit", 1290, (18, 67), ("JC-SYG",), "sygedagpenge",
            "Sygedagpenge", "SDL", "7", "benefit", ("Sygedagpenge",),
            mean_years=0.35, closed_factor=2.0, vulnerable_share=0.3,
            cadence=Cadence(56, 28, 28), notes_per_year=4, decision_days=(3, 14),
            monthly_rate=(16_000, 19_700)),
    Service("resource_pathway", 450, (18, 66), ("JC-RF",), "ressourceforloeb",
            "Ressourceforløb", "LAB", "68 a", "intervention", ("Ressourceforløb",),
            mean_years=2.5, closed_factor=0.6, vulnerable_share=0.7,
            cadence=Cadence(30, 91, 91), notes_per_year=4, decision_days=(28, 90)),
    # --- social (BSF, Fasit) ------------------------------------------------------------------
    Service("drug_treatment", 342, (18, 70), ("BSF-MISBRUG",), "misbrugsbehandling",
            "Stofmisbrugsbehandling", "SEL", "101", "service",
            ("Ambulant stofmisbrugsbehandling", "Dagbehandling"),
            mean_years=1.0, closed_factor=1.0, vulnerable_share=0.75,
            notes_per_year=6, decision_days=(1, 14), hours=(2, 10)),
    Service("alcohol_treatment", 416, (18, 85), ("BSF-MISBRUG",), "alkoholbehandling",
            "Alkoholbehandling", "SUL", "141", "service", ("Ambulant alkoholbehandling",),
            mean_years=0.8, closed_factor=1.0, vulnerable_share=0.7,
            notes_per_year=5, decision_days=(1, 14), hours=(1, 4)),
    Service("disability_pension", 4100, (18, 66), ("BSF-PENSION",), "foertidspension",
            "Førtidspension", "LSP", "16", "benefit", ("Førtidspension",),
            mean_years=15.0, closed_factor=0.1, vulnerable_share=0.35,
            notes_per_year=0.5, decision_days=(30, 180), monthly_rate=(18_000, 21_500)),
    # --- adult support (VOKSEN, Cura) ---------------------------------------------------------
    Service("sel85", 780, (18, 80), ("VOK-STOTTE",), "socialpaedagogisk_stoette",
            "Socialpædagogisk støtte", "SEL", "85", "service", ("Socialpædagogisk støtte",),
            mean_years=2.5, closed_factor=0.6, vulnerable_share=0.6,
            cadence=Cadence(91, 182, 365), notes_per_year=4, decision_days=(14, 84),
            hours=(5, 12)),
    Service("sel107", 141, (18, 80), ("VOK-STOTTE",), "midlertidigt_botilbud",
            "Midlertidigt botilbud", "SEL", "107", "service", ("Midlertidigt botilbud",),
            mean_years=1.5, closed_factor=0.6, vulnerable_share=0.6,
            cadence=Cadence(91, 182, 365), notes_per_year=4, decision_days=(14, 84)),
    Service("sel108", 92, (18, 90), ("VOK-STOTTE",), "laengerevarende_botilbud",
            "Længerevarende botilbud", "SEL", "108", "service", ("Længerevarende botilbud",),
            mean_years=8.0, closed_factor=0.1, vulnerable_share=0.3,
            cadence=Cadence(182, 365, 365), notes_per_year=2, decision_days=(28, 120)),
    Service("home_help", 2620, (50, 105), ("VOK-VISIT",), "hjemmehjaelp",
            "Hjemmehjælp", "SEL", "83", "service",
            ("Personlig pleje", "Praktisk hjælp", "Personlig pleje og praktisk hjælp"),
            mean_years=3.0, closed_factor=0.4, vulnerable_share=0.05,
            cadence=Cadence(365, 365, 365, miss=0.2), notes_per_year=1, decision_days=(3, 21),
            hours=(0.5, 8)),
)
SERVICE_BY_KEY = {s.key: s for s in SERVICES}


@dataclass(frozen=True, slots=True)
class Rates:
    """Population shape and data-quality knobs; every figure is per person or per household."""

    # households (population.md: ~2.1 persons each, 40 % one person; share with children tuned
    # so that children 0-17 make 19.5 % of the population with 1.8 children per family)
    single: float = 0.36
    couple: float = 0.35
    couple_with_children: float = 0.18
    single_parent: float = 0.045
    # the rest: other households of 2-3 adults (a parent with an adult child, shared flats)
    adult_child_at_home: float = 0.3      # families with a son or daughter of 18-24 at home
    children_per_family: tuple[float, ...] = (0.42, 0.40, 0.14, 0.04)  # 1, 2, 3, 4 children
    vulnerable_households: float = 0.065
    protected_address: float = 0.005
    substitute_number: float = 0.004      # adults first known by a substitute number
    alternate_spelling: float = 0.03      # a fagsystem spells the last name differently
    moved_in_history: float = 0.10        # households that moved since HISTORY_FROM
    notifications_per_100k_year: float = 1430
    sel85_double_share: float = 0.06      # § 85 also granted by Ungekontakten/Rådgivningshuset
    left_open_share: float = 0.04         # ended episodes whose case was never closed
    caseworker_change: float = 0.3        # long cases that changed caseworker
    consent_share: float = 0.5            # of multi-department families
    consent_withdrawn: float = 0.15
    marking_share: float = 0.3            # of consenting families: Fasit person-group marking
    pathway_share: float = 0.7            # of consents: a coordinated pathway was started
    pathway_closed: float = 0.35          # of pathways older than 120 days: closed since
    pathway_meeting_days: tuple[int, int] = (42, 90)  # between regular pathway meetings
    youth_pathway_share: float = 0.6      # of 15-17-year-olds with an active BUF case
    youth_meeting_missed: float = 0.3     # 16 / 17½ meetings not held (Ballerup tracks these)
    fagsystem_spelling_registered: float = 1.0  # persons with an alternate spelling and a case
    services: tuple[Service, ...] = field(default=SERVICES)
