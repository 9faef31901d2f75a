"""The report of a real tiny-model study, opened in headless Chromium: no console error, every
chart drawn, nothing fetched from outside the file, the trial table sorts, and a screenshot.

Needs Debian's chromium and chromium-driver and the selenium package (the dev extra). `make test`
(TUNELM_REAL_SERVICES=1) fails without them; elsewhere the test is skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .conftest import require_real
from .test_report import make_study

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _browser_present() -> bool:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return (shutil.which("chromium") or shutil.which("chromium-browser")) is not None and \
        Path(CHROMEDRIVER).exists()


@pytest.fixture
def browser():
    require_real("Chromium", _browser_present(),
                 "apt-get install chromium chromium-driver; pip install selenium (the dev extra)")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    yield driver
    driver.quit()


# For every chart container: how many shapes its <svg> draws and how big it is on the page, or
# the same for a <canvas>.
CHARTS_JS = """
return Array.from(document.querySelectorAll('.chart')).map(function (c) {
  var svg = c.querySelector('svg'), canvas = c.querySelector('canvas');
  var el = svg || canvas, box = el ? el.getBoundingClientRect() : {width: 0, height: 0};
  return {id: c.id, kind: svg ? 'svg' : (canvas ? 'canvas' : 'none'),
          shapes: svg ? svg.querySelectorAll('path, line, polyline, rect, circle, use, text').length
                      : 0,
          width: box.width, height: box.height};
});
"""

COLUMN_JS = """
var head = Array.from(document.querySelectorAll('#trials th'));
var col = head.map(function (th) { return th.textContent; }).indexOf(arguments[0]);
return Array.from(document.querySelectorAll('#trials tbody tr')).map(function (tr) {
  return tr.cells[col].dataset.v; });
"""


def _save(driver, tmp_path: Path) -> Path:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height) + 100, 12000))
    shot = tmp_path / "report.png"
    assert driver.save_screenshot(str(shot))
    if os.environ.get("TUNELM_ARTIFACTS"):
        folder = Path(os.environ["TUNELM_ARTIFACTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, folder / "report_screenshot.png")
        shutil.copy(tmp_path / "study" / "report.html", folder / "report.html")
    return shot


def test_report_renders_in_headless_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By

    from tunelm.report import write_report

    page = write_report(make_study(tmp_path))
    browser.get(page.resolve().as_uri())
    assert browser.title == "tunelm report: study"

    charts = browser.execute_script(CHARTS_JS)
    assert [c["id"] for c in charts] == ["chart-history", "chart-curves", "chart-learning_rate",
                                         "chart-parallel", "chart-importance"]
    for c in charts:
        assert c["kind"] in ("svg", "canvas"), c
        assert c["width"] > 200 and c["height"] > 100, c
        if c["kind"] == "svg":
            assert c["shapes"] > 20, c  # axes, ticks, labels and the data themselves

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors

    # self-contained: the browser loaded nothing but the file itself
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0

    # the table's script sorts by a column, blanks last
    rows = browser.find_elements(By.CSS_SELECTOR, "#trials tbody tr")
    assert len(rows) == 6
    header = [th for th in browser.find_elements(By.CSS_SELECTOR, "#trials th")
              if th.text.startswith("best eval loss")][0]
    header.click()
    losses = [float(v) for v in browser.execute_script(COLUMN_JS, "best eval loss")]
    assert losses == sorted(losses)
    header.click()
    losses = [float(v) for v in browser.execute_script(COLUMN_JS, "best eval loss")]
    assert losses == sorted(losses, reverse=True)

    shot = _save(browser, tmp_path)
    assert shot.stat().st_size > 20_000
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors  # none after the clicks either
