"""A small hand-made family: mother, father and child at one address, a neighbour with name and
address protection, cases in two systems, a grant, consents, a marking and a pathway."""

from __future__ import annotations

from datetime import date, timedelta

from hub.domain import events as ev
from tests.projections.factory import T0, address, cpr, event

MOTHER = cpr(1, date(1984, 5, 2))
FATHER = cpr(2, date(1982, 11, 20))
CHILD = cpr(3, date(2014, 8, 9))
NEIGHBOUR = cpr(4, date(1990, 1, 30))
HOME = address("Vestergade", "12", "dar-home")


def family() -> list[ev.CanonicalEvent]:
    t = T0
    d = timedelta(days=1)
    return [
        event(ev.PersonRegistered("Anna", "Hansen", date(1984, 5, 2), "K", HOME, "G"),
              person=MOTHER, source="cpr", at=t),
        event(ev.PersonRegistered("Bo", "Hansen", date(1982, 11, 20), "M", HOME, "G"),
              person=FATHER, source="cpr", at=t),
        event(ev.PersonRegistered("Carl", "Hansen", date(2014, 8, 9), "M", HOME, "U"),
              person=CHILD, source="cpr", at=t),
        event(ev.PersonRegistered("Dorte", "Skjult", date(1990, 1, 30), "K",
                                  address("Hemmeligvej", "1", "dar-secret"), "U", True),
              person=NEIGHBOUR, source="cpr", at=t),
        event(ev.PersonRelationChanged("child", CHILD, "added"), person=MOTHER, source="cpr", at=t),
        event(ev.PersonRelationChanged("spouse", FATHER, "added"), person=MOTHER, source="cpr",
              at=t),
        # BSF case of the mother in Fasit
        event(ev.CaseOpened("BSF", "u-bsf", "Jobcenter Syd", "kontanthjælp", "open",
                            "Kontanthjælp", "LAS", "2", date(2020, 1, 1)),
              person=MOTHER, case="fasit:C-1", source="fasit", at=t + d),
        event(ev.CaseworkerAssigned("cw-1", "Eva Jensen", "u-bsf", "primary", "eva@example.dk"),
              person=MOTHER, case="fasit:C-1", source="fasit", at=t + d),
        event(ev.CaseActionRecorded("a-1", "journal_note", None, "Samtale", "Tekst"),
              person=MOTHER, case="fasit:C-1", source="fasit", at=t + 2 * d, actor="cw-1"),
        # BUF case of the child in DUBU, with a grant; primary caseworker replaced once
        event(ev.CaseOpened("BUF", "u-buf", "Familieafdelingen", "underretning", "open",
                            None, "BL", "32", date(2024, 1, 1)),
              person=CHILD, case="dubu:S-1", source="dubu", at=t + d),
        event(ev.CaseworkerAssigned("cw-2", "Frank Nielsen", "u-buf", "primary", "frank@x.dk"),
              person=CHILD, case="dubu:S-1", source="dubu", at=t + d),
        event(ev.CaseworkerAssigned("cw-3", "Gitte Lund", "u-buf", "primary", None),
              person=CHILD, case="dubu:S-1", source="dubu", at=t + 3 * d),
        event(ev.CaseStatusChanged("in_progress", "open"), person=CHILD, case="dubu:S-1",
              source="dubu", at=t + 3 * d),
        event(ev.GrantAwarded("g-1", "intervention", "BL", "32", "Familiebehandling", "u-buf",
                              "Familieafdelingen", date(2025, 1, 1), date(2025, 12, 31),
                              "2 timer/uge", 2.0),
              person=CHILD, case="dubu:S-1", source="dubu", at=t + 4 * d),
        event(ev.GrantChanged("g-1", valid_to=date(2026, 6, 30)), person=CHILD,
              case="dubu:S-1", source="dubu", at=t + 5 * d),
        # consents, marking and a pathway
        event(ev.ConsentGiven("c-1", "coordinated_pathway", ("u-buf", "u-bsf"),
                              date(2025, 1, 1), date(2026, 1, 1)),
              person=MOTHER, source="glasplade", at=t + 2 * d),
        event(ev.ConsentGiven("c-2", "overview", ("u-voksen",), date(2025, 1, 1)),
              person=MOTHER, source="glasplade", at=t + 2 * d),
        event(ev.ConsentWithdrawn("c-2", "borgeren ønskede det"), person=MOTHER,
              source="glasplade", at=t + 6 * d),
        event(ev.MarkingSet("m-1", "fasit", "person_group", date(2025, 1, 2)),
              person=MOTHER, source="fasit", at=t + 2 * d),
        event(ev.PathwayStarted("p-1", "u-bsf", "Jobcenter Syd", "odense-buf-bsf", (CHILD,)),
              person=MOTHER, source="glasplade", at=t + 7 * d),
        event(ev.PathwayTovholderAssigned("p-1", "cw-1", "Eva Jensen", "u-bsf"),
              person=MOTHER, source="glasplade", at=t + 7 * d),
        event(ev.PathwayMeetingHeld("p-1", "regular", True, ("u-bsf", "u-buf")),
              person=MOTHER, source="glasplade", at=t + 8 * d),
        # someone looked at the mother
        event(ev.PersonRecordAccessed("user-7", "coordinated_pathway", "overview", "full"),
              person=MOTHER, source="glasplade", actor="user-7", at=t + 9 * d),
    ]
