"""The dashboard end to end in real headless Chromium (Debian's) against a running server:
log in, search, open a citizen, see a case hidden without consent, give consent, see it shown,
and find the view in the access log as the auditor."""

from __future__ import annotations

import os

import pytest

pytestmark = [pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
HIDDEN = "Sagen findes — indhold skjult (intet samtykke)"


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Debian's chromium is required at {CHROMIUM} for the browser test: run "
                    "`apt-get install -y chromium` (deploy/ensure-services.sh does)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def login(page, base: str, user_id: str) -> None:
    page.goto(f"{base}/login")
    page.select_option("#user_id", user_id)
    page.click("button:has-text('Log ind')")
    page.wait_for_url(f"{base}/")


def auditor_log_of(page, base: str, auditor: str, cpr: str, name: str):
    """Log out, log in as ``auditor`` and open the access log of the person ``cpr``/``name``;
    the log's table."""
    page.click("button:has-text('Log ud')")
    login(page, base, auditor)
    page.click("header >> text=Adgangslog")
    page.fill("#al-q", cpr)
    page.click("button:has-text('Vis')")
    page.click(f"text={name}")
    return page.get_by_test_id("access-log")


def test_caseworker_consent_and_auditor(browser, live_server):
    from playwright.sync_api import expect

    base, world = live_server.base_url, live_server.world
    page = browser.new_page()
    page.set_default_timeout(10_000)

    # A caseworker in the children's unit logs in and searches by name.
    login(page, base, "anne")
    expect(page.get_by_test_id("current-user")).to_contain_text("Anne Holm")
    page.fill("#q", "Glasmose")
    page.click("button:has-text('Søg')")
    expect(page.get_by_test_id("search-results")).to_contain_text("Maja Glasmose")

    # She opens the mother: the jobcentre case exists, its content is hidden, owner shown.
    page.click("text=Maja Glasmose")
    expect(page.locator("h1")).to_contain_text("Borgeroverblik: Maja Glasmose")
    job = page.locator(f"tr[data-case='{world.job_case}']")
    expect(job).to_contain_text(HIDDEN)
    expect(job).to_contain_text("Jobcenter, kontanthjælp")
    expect(job).to_contain_text("Jonas Vestergaard")
    expect(page.locator("body")).not_to_contain_text("Kontanthjælp — aktivitetsparat")

    # The citizen consents; the case's content is shown on the next page view.
    page.select_option("#c-formaal", "casework")
    page.fill("#c-enheder", "BUF-MYN-N")
    page.click("button:has-text('Registrér samtykke')")
    job = page.locator(f"tr[data-case='{world.job_case}']")
    expect(job).to_contain_text("Kontanthjælp — aktivitetsparat")
    expect(job).not_to_contain_text(HIDDEN)
    expect(page.get_by_test_id("consents")).to_contain_text("givet")

    # The case history opens now.
    page.click("text=Kontanthjælp — aktivitetsparat")
    expect(page.locator("h1")).to_contain_text("Sagsforløb")
    expect(page.get_by_test_id("timeline")).to_contain_text("Sag oprettet")

    # The auditor finds Anne's view of the mother in the access log.
    log = auditor_log_of(page, base, "rikke", world.mother_cpr, "Maja Glasmose")
    expect(log).to_contain_text("anne")
    views = log.locator("tr", has_text="anne").filter(has_text="overview")
    expect(views.filter(has_text="existence").first).to_be_visible()  # before the consent
    expect(views.filter(has_text="full").first).to_be_visible()  # after it
    expect(log.locator("tr", has_text="anne").filter(has_text="consent").first).to_be_visible()
    page.close()
