"""The web console in a real browser (Debian's chromium, driven by Playwright) against the
embedded default: sign in, see a FIX order appear in the blotter and fill, pull the kill
switch for an account from the page and see its working order canceled at the venue and
its next order refused, with the change in the alert feed; a viewer cannot change
anything. Screenshots go to test-artifacts/ (or $OMS_TEST_ARTIFACTS)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.fix_client import FixClient, tags
from tests.test_embedded_default import system  # noqa: F401 - the fixture: the embedded default, on free ports

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium: the console's browser tests need Debian's "
                                                          "chromium (.ci/run installs it)")
ARTIFACTS = Path(os.environ.get("OMS_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TOKENS = {"risk": "demo-risk-officer-token", "viewer": "demo-viewer-token-00001"}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def signed_in(browser, system, role: str):
    """A page of the console, signed in as the demo user of this role, with its feed live."""
    page = browser.new_context(viewport={"width": 1500, "height": 1300}).new_page()
    page.goto(f"http://127.0.0.1:{system.cfg.api.port}/")
    page.fill("#token", TOKENS[role])
    page.click("#signin button")
    page.wait_for_selector("#feed.up", timeout=30_000)  # the first snapshot may wait on a first compile
    assert page.text_content("#who") == f"{'risk-officer' if role == 'risk' else role} ({role})"
    return page


def row(cl: str, status: str) -> str:
    return f'#blotter tr[data-cl-ord-id="{cl}"][data-status="{status}"]'


def test_an_order_fills_and_a_kill_switch_cancels_and_refuses_from_the_page(system, browser, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = signed_in(browser, system, "risk")
    with FixClient(tmp_path, system.cfg.fix.port, "CLIENT1", "OMS", "FIX.4.2") as t:
        filled = t.next_id()
        t.new_order(filled, "AAPL", "1", "100", account="DEMO1")
        t.expect("8", t11=filled, t39="2", timeout=15)
        page.wait_for_selector(row(filled, "FILLED"), timeout=1_000)  # on the page within a second of the fill
        page.click(f'#blotter tr[data-cl-ord-id="{filled}"]')  # its children and fills
        assert "fills: 100 @" in page.text_content("#blotter tr.detail")

        resting = t.next_id()
        t.new_order(resting, "AAPL", "1", "100", price="185", account="DEMO1")  # under the market: works at XSIM
        t.expect("8", t11=resting, t39="0", timeout=15)
        page.wait_for_selector(row(resting, "NEW"), timeout=2_000)
        page.screenshot(path=ARTIFACTS / "console-working-order.png", full_page=True)

        page.select_option("#ks-scope", "account")
        page.fill("#ks-key", "DEMO1")
        page.fill("#ks-reason", "runaway algo")
        page.click("#ks-on")
        page.wait_for_selector("#ks-result.ok", timeout=10_000)
        pending = t.expect("8", t11=resting, t39="6", timeout=15)
        assert "kill switch [account DEMO1] by risk-officer" in tags(pending, 58)[0]
        t.expect("8", t11=resting, t39="4", timeout=15)  # once the venue confirmed its cancel
        page.wait_for_selector(row(resting, "CANCELED"), timeout=2_000)
        page.wait_for_selector('#switches li[data-scope="account"][data-key="DEMO1"]', timeout=2_000)
        page.wait_for_selector('#alerts li.change:has-text("runaway algo")', timeout=2_000)
        assert "by risk-officer" in page.text_content("#alerts li.change")

        refused = t.next_id()
        t.new_order(refused, "AAPL", "1", "100", price="185", account="DEMO1")
        report = t.expect("8", t11=refused, timeout=15)
        assert tags(report, 39) == ("8",) and "kill_switch" in tags(report, 58)[0]
        page.wait_for_selector(f'#alerts li.reject:has-text("{refused} refused")', timeout=2_000)
        page.screenshot(path=ARTIFACTS / "console-kill-switch.png", full_page=True)
        assert system.sims[0].books["AAPL"].l2(50) is not None  # the venue still answers

        page.fill("#ks-reason", "algo fixed")
        page.click("#ks-off")
        page.wait_for_selector('#switches li[data-key="DEMO1"]', state="detached", timeout=5_000)


def test_a_viewer_cannot_change_anything(system, browser):
    page = signed_in(browser, system, "viewer")
    page.fill("#ks-key", "DEMO2")
    page.fill("#ks-reason", "just looking")
    page.click("#ks-on")
    page.wait_for_selector("#ks-result.error", timeout=10_000)
    assert page.text_content("#ks-result").startswith("refused (403)")
    page.wait_for_selector('#alerts li:has-text("user \'viewer\' is not authorised")', timeout=5_000)
    assert page.query_selector('#switches li[data-key="DEMO2"]') is None
    page.screenshot(path=ARTIFACTS / "console-viewer.png", full_page=True)
