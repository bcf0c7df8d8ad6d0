"""The app as a person uses it: a real Chromium clicks through JupyterLab and the Voilà page.

Each server runs on 127.0.0.1 on a free port, in its own process group, with Jupyter's config,
data, runtime and IPython folders in a temporary folder (nothing of the developer's is read or
written), on a copy of the notebooks and sample data (Lab autosaves outputs into the notebook).
Kernels run in their own sessions, so stopping a server kills its group and each kernel's group.
Chromium is Debian's (``.ci/run`` installs it); ``playwright install`` would need the internet.
Screenshots of the whole app (not just the viewport: the page scrolls inside a container, so a
``full_page`` shot would show one screenful) land in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright

import toolkit
from benchmarks.processes import descendants
from tests.conftest import CUSTOMER_HEADERS, DATA, ROOT, customer, write_workbook
from toolkit.runs import COUNT_NAMES

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
START_TIMEOUT = 60  # seconds for a server to answer
UI_TIMEOUT = 60_000  # milliseconds for the page to show what we wait for
LOADING = re.compile(r"Loading widget", re.IGNORECASE)
PAGE_SIZE = 50  # the app's rejected rows per page (IngestApp's default, which the notebook keeps)
MAX_SHOT_HEIGHT = 12_000  # pixels: a screenshot of the whole app, as tall as it is, within reason

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of notebooks/ and data/ side by side, as the notebooks expect, plus Jupyter's folders."""
    site = tmp_path_factory.mktemp("site")
    shutil.copytree(ROOT / "notebooks", site / "root" / "notebooks")
    shutil.copytree(DATA, site / "root" / "data", ignore=shutil.ignore_patterns("*.py", "*.json", "*.md"))
    # No news or update checks: start-up would stall on the network, and a consent toast would cover the page.
    config = {
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate", "extension_manager": "readonly"}
    }
    (site / "jupyter-config").mkdir()
    (site / "jupyter-config" / "jupyter_server_config.json").write_text(json.dumps(config))
    settings = site / "jupyter-config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return site


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_jupyterlab_runs_the_notebook_and_the_app_ingests_an_uploaded_workbook(
    site: Path, browser: Browser, tmp_path: Path
) -> None:
    with serve(["-m", "jupyter", "lab", "--no-browser"], site) as base, page_of(browser) as page:
        page.goto(f"{base}/lab/tree/notebooks/01_ingest.ipynb")
        # Run All before the kernel is up runs nothing: wait for the status bar to say it is idle.
        page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle")).first.wait_for(timeout=UI_TIMEOUT)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        use_the_app(page, upload(tmp_path), ARTIFACTS / "jupyterlab.png")


def test_voila_serves_the_app_as_a_page_that_ingests_an_uploaded_workbook(site: Path, browser: Browser, tmp_path: Path) -> None:
    voila = ["-m", "voila", "notebooks/01_ingest.ipynb", "--no-browser", "--VoilaExecutor.timeout=120", "--show_tracebacks=False"]
    with serve(voila, site, app="Voila") as base, page_of(browser) as page:
        page.goto(base + "/")
        use_the_app(page, upload(tmp_path), ARTIFACTS / "voila.png")


def upload(folder: Path) -> Path:
    """120 customers, every other one rejected (age not a number, or a negative salary): two pages of rejects."""
    rows = [
        customer(i, Age="abc") if i % 4 == 0 else customer(i, Monthly_Salary="-5") if i % 4 == 2 else customer(i)
        for i in range(1, 121)
    ]
    return write_workbook(folder / "from_a_colleague.xlsx", [CUSTOMER_HEADERS, *rows])


def use_the_app(page: Page, workbook: Path, screenshot: Path) -> None:
    """Upload through the file chooser, Preview, Run, browse the rejects, export; no widget left unrendered."""
    screenshot.parent.mkdir(exist_ok=True)
    app = page.locator(".tk-app")
    try:
        _use_the_app(page, app, workbook, screenshot)
    finally:  # a picture of the end state, pass or fail: it is the first thing to look at
        if app.count():
            shoot_whole(page, app, screenshot)
        else:
            page.screenshot(path=str(screenshot))


def _use_the_app(page: Page, app: Locator, workbook: Path, screenshot: Path) -> None:
    expected = toolkit.preview(workbook)  # what the app must predict and then do, on a fresh warehouse
    assert expected.failed > PAGE_SIZE  # so that the rejected rows take two pages
    app.wait_for(timeout=UI_TIMEOUT)
    with page.expect_file_chooser(timeout=UI_TIMEOUT) as chooser:
        app.locator("button.widget-upload").click()
    chooser.value.set_files(str(workbook))
    picked = app.locator("select[multiple] option:checked")
    picked.filter(has_text=f"{workbook.name} (uploaded)").wait_for(timeout=UI_TIMEOUT)
    assert picked.count() == 1

    app.locator("button", has_text="Preview").click()
    app.get_by_text("previewed 1 workbook(s)").wait_for(timeout=UI_TIMEOUT)
    assert "nothing was written" in app.inner_text()
    assert counts_shown(app) == {k: expected.to_dict()[k] for k in SHOWN_COUNTS}
    assert app.locator("h2", has_text=f"{workbook.name} (uploaded) → customers").count() == 1
    shoot_whole(page, app, screenshot.with_name(f"{screenshot.stem}-preview.png"))

    app.locator("button", has_text="Run").click()  # the only button saying "Run" (its icon glyph is in its name)
    app.get_by_text(f"done: 1 run(s), {expected.inserted} rows inserted").wait_for(timeout=UI_TIMEOUT)
    assert counts_shown(app) == {k: expected.to_dict()[k] for k in SHOWN_COUNTS}
    assert app.locator("td.tk-cell-bad").count() > 0  # the rejected rows, failing cells highlighted

    # Browse the rejected rows: two pages, then one rule only.
    pages = app.locator(".widget-html", has_text=re.compile(r"^rows \d"))
    assert pages.inner_text() == f"rows 1–{PAGE_SIZE} of {expected.failed} · page 1 of 2"
    app.locator("button", has_text="Next").click()
    pages.filter(has_text=f"rows {PAGE_SIZE + 1}–{expected.failed} of {expected.failed} · page 2 of 2").wait_for(
        timeout=UI_TIMEOUT
    )
    rule, failures = next(iter(expected.failures_by_rule.items()))
    rule_filter = app.locator(".widget-dropdown", has=page.locator("label", has_text="Rule")).locator("select")
    rule_filter.select_option(label=f"{rule} ({failures:,})")
    pages.filter(has_text=f"rows 1–{failures} of {failures} · page 1 of 1").wait_for(timeout=UI_TIMEOUT)
    shown_rows = app.locator("table.tk").last.locator("tr").count() - 1  # the page's rows, under its header row
    assert shown_rows == failures

    app.locator("button", has_text="HTML report").click()
    app.locator("a[download^='report-']").wait_for(timeout=UI_TIMEOUT)
    shoot_whole(page, app, screenshot.with_name(f"{screenshot.stem}-rejected.png"))
    app.locator("button", has_text="Fix-it workbook").click()
    app.locator("a[download^='fixit-customers-']").wait_for(timeout=UI_TIMEOUT)

    assert page.get_by_text(LOADING).count() == 0, "a widget was left at 'Loading widget…'"
    assert "Traceback" not in app.inner_text()


SHOWN_COUNTS = COUNT_NAMES  # every box a report shows: a page without them fails the comparison


def counts_shown(app: Locator) -> dict[str, int]:
    """The summary's count boxes: {"total": 120, ...}."""
    boxes = app.locator(".tk-count")
    shown = {}
    for i in range(boxes.count()):
        number, name = boxes.nth(i).inner_text().split("\n", 1)
        shown[name.strip()] = int(number.replace(",", ""))
    return shown


def shoot_whole(page: Page, element: Locator, path: Path) -> None:
    """A screenshot of the whole element: the viewport is made tall enough for all of it to show.

    Lab and Voilà scroll the page inside a container, so ``full_page=True`` captures only the
    viewport, and an element screenshot is clipped by that container. A viewport taller than the
    element (and what sits above it) lets the container show all of it; the check says if not.
    """
    size = page.viewport_size
    assert size is not None
    height, clipped = size["height"], {"cut": 0, "by": ""}
    try:
        for _ in range(3):  # grow by what is cut off until nothing is (layouts settle after a resize)
            element.scroll_into_view_if_needed()
            clipped = element.evaluate(_CLIPPED)
            if not clipped["cut"] or height >= MAX_SHOT_HEIGHT:
                break
            height = min(MAX_SHOT_HEIGHT, height + int(clipped["cut"]) + 50)
            page.set_viewport_size({"width": size["width"], "height": height})
        element.screenshot(path=str(path), animations="disabled")
    finally:
        page.set_viewport_size(size)
    assert not clipped["cut"], f"{path.name}: {clipped['cut']} px of the app are cut off by {clipped['by']}"


# How much of the element does not show: points down its left edge, every 50 px, where the page shows
# something else (or nothing, outside the window) instead; and what shows there, to say why.
_CLIPPED = """element => {
    const box = element.getBoundingClientRect(), step = 50;
    let cut = 0, by = "";
    for (let y = box.top + 2; y < box.bottom - 2; y += step) {
        const hit = document.elementFromPoint(box.left + 4, y);
        if (!hit || !element.contains(hit)) {
            cut += step;
            by = by || (hit ? hit.className || hit.tagName : "the edge of the window");
        }
    }
    return {cut, by};
}"""


@contextmanager
def page_of(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    try:
        yield context.new_page()
    finally:
        context.close()


@contextmanager
def serve(args: list[str], site: Path, *, app: str = "ServerApp") -> Iterator[str]:
    """Start a Jupyter server (Lab or Voilà) on a free loopback port; yield its URL; kill it and its kernels."""
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(site / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(site / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(site / "jupyter-runtime"),
        "IPYTHONDIR": str(site / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    command = [
        sys.executable,
        *args,
        f"--{app}.ip=127.0.0.1",
        f"--{app}.port={port}",
        f"--{app}.port_retries=0",
        f"--{app}.token=",
    ]
    if app == "ServerApp":
        command += ["--allow-root", "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={site / 'root'}"]
    log = site / f"{app}-{port}.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            command, cwd=site / "root", env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base, server, log)
        yield base
    finally:
        stop(server)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/api/status", timeout=2):
                return
        except urllib.error.HTTPError:  # an answer all the same (Voilà refuses the path): it is up
            return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"the server did not answer within {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's group and every kernel's group (kernels start their own sessions), then SIGKILL."""
    groups = {server.pid} | {group for pid in descendants(server.pid) if (group := _group(pid))}
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for group in groups:
            try:
                os.killpg(group, signum)
            except ProcessLookupError:
                pass
        try:
            server.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    server.wait()


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
