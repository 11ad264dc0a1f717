"""The report as a person uses it: headless Chromium (Debian's chromium + chromium-driver)
driven by selenium opens index.html from file:// with no network, and we check what a reader
sees: the banner, the expected rows, a column sort by clicking its header, a run name with HTML
in it shown as text. A screenshot is saved ($ONESTEP_SCREENSHOT_DIR, else the test's tmp dir)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

INSTALL = "apt-get install chromium chromium-driver && pip install selenium  (or: pip install -e '.[test]')"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER and HAVE_SELENIUM),
    reason=f"headless Chromium or selenium missing (chromium={CHROMIUM}, chromedriver={DRIVER}, "
           f"selenium={'yes' if HAVE_SELENIUM else 'no'}); install with: {INSTALL}")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    from reports_store import make_store

    from onestep.benchmarks.cli import main

    tmp = tmp_path_factory.mktemp("browser")
    store = make_store(tmp / "store")
    assert main(["report", "--store", str(store.root), "--out", str(tmp / "report")]) == 0
    return tmp / "report" / "index.html"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def _table_after_heading(driver, heading: str):
    from selenium.webdriver.common.by import By

    h = driver.find_element(By.XPATH, f"//h3[normalize-space()='{heading}']")
    return h.find_element(By.XPATH, "following-sibling::table[1]")


def _column(table, name: str) -> list[str]:
    from selenium.webdriver.common.by import By

    headers = [th.text.strip() for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    i = headers.index(name)
    return [tr.find_elements(By.TAG_NAME, "td")[i].get_attribute("data-sort") for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def test_a_reader_sees_the_report(rendered, browser, tmp_path):
    from selenium.webdriver.common.by import By

    from reports_store import HTML_LABEL

    browser.get(rendered.as_uri())
    assert browser.title == "onestep-bench leaderboard"
    # The first thing on the page: the banner saying these are not paper results.
    banners = browser.find_elements(By.CSS_SELECTOR, ".banner")
    assert banners and banners[0].is_displayed() and "Not paper results" in banners[0].text
    assert any("UNTRAINED" in b.text for b in banners) and any("digits default" in b.text for b in banners)

    # Expected rows: every smoke method in the FD-digits leaderboard, best (lowest) first.
    digits = _table_after_heading(browser, "digits 8x8 class-conditional — FD-digits")
    methods = [tr.find_elements(By.TAG_NAME, "td")[0].text for tr in digits.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert sorted(methods) == ["cd", "d2o", "edm", "gdd"]
    assert [float(v) for v in _column(digits, "ours")] == [12.5, 44.0, 44.0, 61.0]  # cd (UNTRAINED) last
    notes = [tr.find_elements(By.TAG_NAME, "td")[-1].text for tr in digits.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert sum("same algorithm" in n for n in notes) == 1  # GDD/D2O: one row says so

    # Click "ours" in the CIFAR-10 FID leaderboard: ascending, then descending.
    fid = _table_after_heading(browser, "cifar10 32x32 unconditional — FID")
    header = [th for th in fid.find_elements(By.CSS_SELECTOR, "thead th") if th.text.strip() == "ours"][0]
    header.click()
    up = [float(v) for v in _column(fid, "ours")]
    assert up == sorted(up) == [1.58, 1.70, 2.40] and header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert [float(v) for v in _column(fid, "ours")] == [2.40, 1.70, 1.58]
    verdicts = {tr.find_elements(By.TAG_NAME, "td")[2].text.split("\n")[0]: tr.find_elements(By.TAG_NAME, "td")[8].text.split("\n")[0]
                for tr in fid.find_elements(By.CSS_SELECTOR, "tbody tr")}
    assert verdicts == {"GDD": "reproduced", "GDD-I": "worse than published", "GDD-freeze[freeze=conv]": "reproduced"}

    # A paper table: the reproduced cell beside its published value, the rest "not run" + command.
    t2 = browser.find_element(By.ID, "paper-gdd-2")
    cells = [td.text for td in t2.find_elements(By.CSS_SELECTOR, "tbody td")]
    assert any(c.startswith("1.58") for c in cells) and any("onestep run gdd_freezing" in c for c in cells)

    # The run named with HTML is shown as text, never parsed as markup.
    assert not browser.find_elements(By.ID, "injected")
    assert HTML_LABEL in browser.find_element(By.TAG_NAME, "body").text

    out = Path(os.environ.get("ONESTEP_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    shot = out / "report_screenshot.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_the_page_needs_no_network(rendered):
    """Self-contained: no script, style or image is fetched from anywhere (images are data URIs)."""
    import re

    html = rendered.read_text()
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs and all(r.startswith(("#", "data:image/png;base64,")) for r in refs), \
        sorted({r for r in refs if not r.startswith(("#", "data:"))})[:5]
