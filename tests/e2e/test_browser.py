"""The MLflow UI as a person sees it: a real sweep (the study's 14 settings × 3 seeds), a real
``mlflow ui``, Debian's headless Chromium driven by selenium. Screenshots go to
``$LRDECAY_SCREENSHOTS`` (else the test's tmp).

Needs ``apt-get install chromium chromium-driver`` and selenium (in the dev extras): skipped
without them, failed under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lrdecay.core.records import epoch_key
from lrdecay.tracking.ui import ROLE_TAG
from tests.helpers import (
    experiment_runs,
    free_port,
    is_job,
    is_summary_run,
    is_sweep_parent,
    require_debian_package,
    require_module,
    run_cli,
    start_mlflow_ui,
    store,
    store_uri,
)

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1600,1000",
)
SEEDS = (0, 1, 2)
SETTINGS = 14
JOBS = SETTINGS * len(SEEDS)
OTHER_KEYS = {"sgd": ("optimizer.betas",), "adam": ("optimizer.momentum",)}
#: The columns the printed URLs' views show, and MLflow's defaults they replace (all "-" here).
VIEW_COLUMNS = {"summary/final_val_acc", "summary/convergence_epoch", "setting", "seed"}
UI_DEFAULT_COLUMNS = {"Dataset", "Source", "Models"}
#: How a band's lines are drawn (plotly's stroke-dasharray): the mean solid, the lower bound of
#: its interval dashed, the upper one dotted.
BAND_STYLES = {"", "9px, 9px", "3px, 3px"}
VAL_ACC = epoch_key("val_acc")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> dict:
    """The study's 14 settings x 3 seeds on digits at 2 epochs; its store, URLs and runs."""
    require_debian_package("chromium", CHROMIUM)
    require_debian_package("chromium-driver", CHROMEDRIVER)
    require_module("selenium", "make setup (selenium is in the lock, from the dev extras)")
    folder = tmp_path_factory.mktemp("browser")
    proc = run_cli(
        [
            "-m",
            "experiment=paper",
            "dataset=digits",
            f"seed={','.join(map(str, SEEDS))}",
            "trainer.max_epochs=2",
            "report.enabled=false",
            "tracking.log_plot=false",
            "trainer.progress=off",
            f"data.root={folder}/data",
        ],
        cwd=folder,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    url = re.search(r"then open (\S+)", proc.stdout)
    assert url, proc.stdout[-2000:]
    runs = experiment_runs(store(folder), max_results=1000)
    bands = re.search(r"one band each \(mean and 95 % interval over seeds\): (\S+)", proc.stdout)
    assert bands, proc.stdout[-2000:]
    return {"folder": folder, "url": url.group(1), "bands": bands.group(1), "runs": runs}


@pytest.fixture(scope="module")
def ui(sweep: dict) -> Iterator[str]:
    """docs/tracking.md's ``mlflow ui`` on the sweep's store, on a free port; yields its URL."""
    port = free_port()
    proc = start_mlflow_ui(store_uri(sweep["folder"]), sweep["folder"], port)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base + "/health", 120)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture
def browser() -> Iterator:
    """A fresh headless Chromium profile, as a first-time user has."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(2)
    driver.set_script_timeout(DRAWN_S)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where screenshots go: ``$LRDECAY_SCREENSHOTS`` to keep them, else a tmp folder."""
    folder = Path(os.environ.get("LRDECAY_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _until(check: Callable[[], bool], seconds: float = 30) -> bool:
    """Poll ``check`` until it holds (True) or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return check()


def _text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def _close_assistant(driver) -> None:
    """Close MLflow's assistant side panel, if open, so the screenshots show the runs."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(
        By.CSS_SELECTOR, "[data-component-id='mlflow.assistant.chat_panel.close']"
    ):
        driver.execute_script("arguments[0].click();", button)  # even while it slides in


def _open_runs_table(driver, sweep: dict, ui: str, printed_url: str = "url") -> None:
    """Open a URL the sweep printed, on this test's port; wait for the runs table."""
    printed = urllib.parse.urlsplit(sweep[printed_url])
    driver.get(ui + printed.path + "#" + printed.fragment)
    assert _until(lambda: "Run Name" in _text(driver)), _text(driver)[:500]
    _close_assistant(driver)


def _expand_seeds(driver) -> None:
    """Unfold the training runs: with runs grouped by role, theirs (they have none) is MLflow's
    "Additional runs" group, folded until its chevron is clicked."""
    from selenium.webdriver.common.by import By

    row = f"[role=row][row-id='tag.{ROLE_TAG}']"  # the group of runs without the tag
    assert _until(
        lambda: "Additional runs" in _text(driver) and driver.find_elements(By.CSS_SELECTOR, row)
    )
    chevron = driver.find_element(By.CSS_SELECTOR, f"{row} span[role=button]")
    driver.execute_script("arguments[0].click();", chevron)


def _jobs(sweep: dict) -> list:
    return [r for r in sweep["runs"] if is_job(r)]


def _summaries(sweep: dict) -> list:
    return [r for r in sweep["runs"] if is_summary_run(r)]


def _rgb(colour: str) -> str:
    """``#rrggbb`` as the browser writes a stroke: ``rgb(r, g, b)``."""
    return "rgb({}, {}, {})".format(*(int(colour[i : i + 2], 16) for i in (1, 3, 5)))


#: Each line the chart card titled ``arguments[0]`` draws: its colour and dash style.
LINES = r"""
const lines = [];
for (const title of document.querySelectorAll('h4[title]')) {
  if (title.getAttribute('title') !== arguments[0]) continue;
  let card = title.parentElement;
  while (card && !card.querySelector('svg.main-svg')) card = card.parentElement;
  for (const path of card ? card.querySelectorAll('g.trace path.js-line') : []) {
    if ((path.getAttribute('d') || '').length > 1) {
      lines.push([path.style.stroke, path.style.strokeDasharray]);
    }
  }
}
return lines;
"""
#: Seconds a chart may take to draw: a browser busy drawing answers scripts only in between.
DRAWN_S = 180


def _lines(driver, key: str) -> dict[str, list[str]]:
    """The lines the band chart of ``key`` draws, by colour: each one's dash style."""
    lower, upper = f"{key}_lo", f"{key}_hi"
    drawn: dict[str, list[str]] = {}
    for colour, dash in driver.execute_script(LINES, f"{key} vs {lower} vs {upper}"):
        drawn.setdefault(colour, []).append(dash)
    return drawn


def _one_band_per_setting(driver, sweep: dict) -> bool:
    """Whether the val_acc chart draws exactly one band (mean, lower and upper bound) in each
    setting's colour, and nothing else."""
    drawn = _lines(driver, VAL_ACC)
    colours = {_rgb(r.data.tags["mlflow.runColor"]) for r in _summaries(sweep)}
    return set(drawn) == colours and all(set(d) == BAND_STYLES for d in drawn.values())


def _columns(driver) -> set[str]:
    """The runs table's column headers."""
    headers = driver.execute_script(
        "return Array.from(document.querySelectorAll('[role=columnheader]'))"
        ".map(e => e.textContent)"
    )
    return {h.strip() for h in headers if h.strip()}


def _charted(driver) -> list[bool]:
    """For each run the chart view lists, whether its charts draw it (its eye toggle)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('input.is-visibility-toggle-checkbox'))"
        ".map(e => e.checked)"
    )


def _chart_view(driver) -> None:
    """Switch the runs page to its chart view and wait for the charts."""
    from selenium.webdriver.common.by import By

    chart = driver.find_element(By.XPATH, "//input[@name='runs-view-mode' and @value='CHART']")
    driver.execute_script("arguments[0].click();", chart)  # the radio's styled label covers it
    assert _until(lambda: "Add chart" in _text(driver)), _text(driver)[:1500]


def test_printed_url_opens_the_runs_table_summaries_first_seeds_folded(
    browser, sweep, ui, shots
) -> None:
    _open_runs_table(browser, sweep, ui)
    assert "/runs" in browser.current_url and "workflowType=machine_learning" in browser.current_url
    assert "Traces 0" not in _text(browser) and "No data available" not in _text(browser)
    (parent,) = [r for r in sweep["runs"] if is_sweep_parent(r)]
    assert _until(lambda: parent.info.run_name in _text(browser))
    assert _until(lambda: "seq3-epoch (mean of 3)" in _text(browser)), _text(browser)[:1500]
    assert "seq3-epoch s1" not in _text(browser)  # the seeds are folded, one click away
    _expand_seeds(browser)
    assert _until(lambda: "seq3-epoch s1" in _text(browser)), _text(browser)[:1500]
    assert _until(lambda: _columns(browser) >= VIEW_COLUMNS), _columns(browser)
    assert not UI_DEFAULT_COLUMNS & _columns(browser)
    browser.save_screenshot(str(shots / "runs_table.png"))
    names = [r.info.run_name for r in _jobs(sweep)]
    assert len(names) == JOBS and len(set(names)) == JOBS  # seeds differ by name
    assert len(_summaries(sweep)) == SETTINGS
    colours = {}
    for run in _jobs(sweep) + _summaries(sweep):  # a setting's seeds and summary share a colour
        colours.setdefault(run.data.tags["setting"], set()).add(run.data.tags["mlflow.runColor"])
    assert all(len(c) == 1 for c in colours.values())
    assert len({c for cs in colours.values() for c in cs}) == SETTINGS


def test_chart_view_plots_the_curves_and_not_the_sweep_counters(browser, sweep, ui, shots) -> None:
    from selenium.webdriver.common.by import By

    _open_runs_table(browser, sweep, ui)
    _chart_view(browser)
    bands = _until(lambda: _one_band_per_setting(browser, sweep), DRAWN_S)
    assert bands, _lines(browser, VAL_ACC)
    # the rows shown are drawn (MLflow's default draws the first 10): the 3 groups' rows, the
    # summaries and the sweep's parent; the jobs are folded
    assert _until(lambda: _charted(browser) == [True] * (3 + SETTINGS + 1)), _charted(browser)
    time.sleep(2)  # let the charts draw before the screenshot
    browser.save_screenshot(str(shots / "chart_view.png"))
    # sections in the order shown: the curves first, then the run-level values; none of the
    # parent's counters (tags now, no charts)
    sections = re.findall(r"^(.+)\n\((\d+)\)\nAdd chart$", _text(browser), re.MULTILINE)
    child = _jobs(sweep)[0].data.metrics
    counts = {  # a band per metric the jobs log, and the seeds it averages
        section: str(sum(k.startswith(f"{section}/") for k in child) + 1)
        for section in ("epoch", "summary")
    }
    assert sections == list(counts.items()), sections
    bands = [f"{k} vs {k}_lo vs {k}_hi" for k in (VAL_ACC, epoch_key("lr"))]
    assert _first_section_holds(browser, *bands)
    assert "children_" not in _text(browser)
    search = browser.find_element(By.CSS_SELECTOR, "input[placeholder='Search metric charts']")
    search.send_keys("val_")  # the charts below the fold (val_loss) are drawn once searched
    assert _until(lambda: "epoch/val_loss" in _text(browser) and "epoch/val_acc" in _text(browser))
    time.sleep(2)
    browser.save_screenshot(str(shots / "chart_view_val.png"))


def _first_section_holds(driver, *charts: str) -> bool:
    """Whether the chart view's first section (its text up to the next section's header)
    shows ``charts``."""
    text = _text(driver)
    headers = [h.start() for h in re.finditer(r"^.+\n\(\d+\)\nAdd chart$", text, re.MULTILINE)]
    if not headers:
        return False
    first = text[headers[0] : (headers[1:] or [len(text)])[0]]
    return all(re.search(rf"^{re.escape(chart)}$", first, re.MULTILINE) for chart in charts)


def test_compare_view_tells_the_seeds_apart(browser, sweep, ui, shots) -> None:
    pair = sorted(
        (r for r in _jobs(sweep) if r.data.tags["setting"] == "seq3-epoch"),
        key=lambda r: r.info.run_name,
    )
    query = urllib.parse.urlencode(
        {
            "runs": json.dumps([r.info.run_id for r in pair]),
            "experiments": json.dumps([pair[0].info.experiment_id]),
        }
    )
    browser.get(f"{ui}/#/compare-runs?{query}&workflowType=machine_learning")
    assert _until(lambda: all(r.info.run_name in _text(browser) for r in pair)), _text(browser)[
        :1500
    ]
    _close_assistant(browser)
    time.sleep(2)
    browser.save_screenshot(str(shots / "compare_view.png"))
    assert [r.info.run_name for r in pair] == ["seq3-epoch s0", "seq3-epoch s1", "seq3-epoch s2"]


def test_a_child_run_page_lists_only_its_own_params(browser, sweep, ui, shots) -> None:
    # a run's link as MLflow's own pages give it (no workflow type) shows the run all the same
    for (setting, optimizer), query in zip(
        (("seq1-cutoff", "sgd"), ("adam-fixed", "adam")),
        ("?workflowType=machine_learning", ""),
        strict=True,
    ):
        child = next(r for r in _jobs(sweep) if r.data.tags["setting"] == setting)
        browser.get(
            f"{ui}/#/experiments/{child.info.experiment_id}/runs/{child.info.run_id}{query}"
        )
        shown = _until(lambda name=child.info.run_name: name in _text(browser))
        assert shown, _text(browser)[:1500]
        assert _until(lambda: "optimizer.lr" in _text(browser)), _text(browser)[:1500]
        _close_assistant(browser)
        text = _text(browser)
        for key in (
            *OTHER_KEYS[optimizer],
            "report.",
            "trial.",
            "sequence.gamma",
            "sequence.period",
        ):
            assert key not in text, (setting, key)
    browser.save_screenshot(str(shots / "run_page.png"))


def test_a_fresh_profile_reaches_the_runs_table_from_the_list_with_one_switch(
    browser, sweep, ui, shots
) -> None:
    """The list's entry point in a browser MLflow has never seen (docs/tracking.md's steps): the
    list links to ``#/experiments/<id>`` with no workflow type, so MLflow 3 opens its GenAI
    Overview whatever the experiment's tags; one click on "Model training" opens the runs
    table, and the browser keeps that choice for every later visit.

    Pins MLflow's UI as of 3.17.2 (requirements.lock): the click first shows the Overview at
    ``#/experiments/<id>`` and about half a second later rewrites the URL to
    ``#/experiments/<id>/overview/usage?workflowType=genai`` (3.18.0: ``.../overview?
    workflowType=genai``, the rest of this flow alike). Hence the wait for the URL: read at once,
    it is still ``#/experiments/<id>`` on a busy machine, whatever the version."""
    from selenium.webdriver.common.by import By

    def open_from_list() -> None:
        browser.get(f"{ui}/#/experiments")
        browser.refresh()  # a new page load: nothing kept but the browser's storage
        link = (By.PARTIAL_LINK_TEXT, "lrdecay-digits")
        assert _until(lambda: bool(browser.find_elements(*link)))
        browser.find_element(*link).click()

    experiment_id = sweep["runs"][0].info.experiment_id
    open_from_list()
    assert _until(lambda: "Traces" in _text(browser) and "Overview" in _text(browser))
    overview = f"/#/experiments/{experiment_id}/overview"
    assert _until(lambda: overview in browser.current_url), browser.current_url
    assert "workflowType=genai" in browser.current_url and "Run Name" not in _text(browser)
    _close_assistant(browser)
    browser.save_screenshot(str(shots / "list_click_fresh_profile.png"))
    for tip in browser.find_elements(By.XPATH, "//button[normalize-space()='Got it']"):
        tip.click()  # GenAI's "Detect Issues" tip covers the page on a first visit
    browser.find_element(By.XPATH, "//*[text()='Model training']").click()
    assert _until(lambda: "Run Name" in _text(browser)), _text(browser)[:500]
    assert "workflowType=machine_learning" in browser.current_url
    stored = "return window.localStorage.getItem('mlflow.workflowType_v1')"
    assert browser.execute_script(stored) == '"machine_learning"'
    open_from_list()  # the choice is kept: the list now opens the runs table
    assert _until(lambda: "Run Name" in _text(browser)), _text(browser)[:500]
    assert "/runs" in browser.current_url


def test_printed_sweep_url_draws_one_band_per_setting(browser, sweep, ui, shots) -> None:
    """The sweep's URL opens its chart view on the 14 summary runs: in each setting's colour its
    mean solid and its interval's bounds dashed and dotted; one click unfolds the seeds, each
    drawn in its setting's colour beside its band."""
    _open_runs_table(browser, sweep, ui, printed_url="bands")
    assert "compareRunsMode=CHART" in browser.current_url
    assert _until(lambda: f"Group: summary\n{SETTINGS}" in _text(browser)), _text(browser)[:1500]
    assert "Load more" not in _text(browser)  # every summary on the UI's first page
    table = _text(browser).split("Group: summary", 1)[1]
    assert "seq3-epoch s0" not in table  # the seeds are folded
    assert all(r.info.run_name in table for r in _summaries(sweep)), table[:1500]
    assert _until(lambda: _one_band_per_setting(browser, sweep), DRAWN_S), _lines(browser, VAL_ACC)
    time.sleep(2)  # let the charts draw before the screenshot
    browser.save_screenshot(str(shots / "sweep_bands.png"))

    def solid() -> dict[str, int]:
        """The val_acc chart's solid lines by colour: a setting's mean, or one of its seeds."""
        return {colour: dashes.count("") for colour, dashes in _lines(browser, VAL_ACC).items()}

    means = solid()
    _expand_seeds(browser)
    assert _until(lambda: "seq3-epoch s2" in _text(browser)), _text(browser)[:1500]
    # each setting's colour now also draws its 3 seeds, as many lines each as its mean
    expected = {colour: n * (1 + len(SEEDS)) for colour, n in means.items()}
    assert _until(lambda: solid() == expected, DRAWN_S), (solid(), expected)
    shown = 3 + SETTINGS + 1 + JOBS  # every row drawn, the jobs now too
    assert _until(lambda: _charted(browser) == [True] * shown), _charted(browser)
    time.sleep(2)
    browser.save_screenshot(str(shots / "sweep_bands_and_seeds.png"))
