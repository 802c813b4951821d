"""Steps the browser tests share: log in, sign up a patient, run axe-core on a page."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"  # npm axe-core, installed by deploy/test.sh
PASSWORD = "correct-horse-battery-staple"
# The two sizes every page is checked at (issue 16): a laptop and a phone.
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def log_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def sign_up_patient(page, username: str, password: str = PASSWORD) -> None:
    """A new patient through the sign-up form; ends on the disclaimer it must accept first."""
    page.goto("/accounts/signup/")
    page.fill("#id_username", username)
    page.fill("#id_email", f"{username}@example.org")
    page.fill("#id_password1", password)
    page.fill("#id_password2", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/accounts/disclaimer/")


def axe_violations(page) -> list[dict]:
    """axe's violations on the page; run again if the page reloaded itself meanwhile (a study
    page reloads when its status brings a new result)."""
    from playwright.sync_api import Error

    for attempt in range(3):
        try:
            return _axe_once(page)
        except Error:
            if attempt == 2:
                raise
            page.wait_for_timeout(1000)
            page.wait_for_load_state()
    return []


def _axe_once(page) -> list[dict]:
    page.evaluate(AXE.read_text())
    return page.evaluate(
        """async () => {
          const result = await axe.run(document, { resultTypes: ["violations"] });
          return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map((n) => ({ target: n.target.join(" "), summary: n.failureSummary })) }));
        }"""
    )
