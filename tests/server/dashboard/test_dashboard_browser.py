"""The dashboard in a real browser (Playwright driving the system's Chromium),
beside a real ``fedcare simulate --dashboard`` run: the round counter
advances while the federation trains, every hospital is listed with its
epsilon, the audit log reads verified; a tampered copy of the run reads
broken, an empty folder says so. Screenshots go to ``test-artifacts/``.

Skipped, saying why, when playwright or /usr/bin/chromium is missing; in CI
(``CI`` set) that is a failure instead (``make test`` installs Chromium with
deploy/system-deps.sh).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import run_folders

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
ROUNDS = 2
RUN_TIMEOUT_S = 1200


def _missing() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (apt-get install chromium; make test does it)"
    return ""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason and os.environ.get("CI"):
        pytest.fail(f"the browser tests must run in CI: {reason}")
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"]
        )
        yield launched
        launched.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _dashboard(run_dir: Path) -> Iterator[str]:
    """``fedcare dashboard`` of ``run_dir`` in this process, on a free port."""
    import uvicorn

    from server.dashboard import create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(run_dir), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _wait_up(f"http://127.0.0.1:{port}/", 30)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)


def _wait_up(url: str, seconds: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"fedcare simulate exited {proc.returncode} early")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def _screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def _new_page(browser: Any) -> Any:
    return browser.new_page(viewport={"width": 1366, "height": 768})


@pytest.fixture(scope="module")
def simulated(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A real ``fedcare simulate --dashboard`` watched from its start to its end:
    the round counter's texts as seen, and the page at the end."""
    tmp = tmp_path_factory.mktemp("live")
    out, port = tmp / "run", _free_port()
    argv = [sys.executable, "-m", "simulation.cli.main", "simulate", "--out", str(out)]
    argv += ["--hospitals", "3", "--scale", "0.2", "--rounds", str(ROUNDS)]
    argv += ["--num-cpus", "2", "--no-baselines", "--format", "json"]
    argv += ["--dashboard", "--dashboard-port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLWR_HOME": str(tmp / "flwr")}
    log = (tmp / "simulate.log").open("w")
    proc = subprocess.Popen(argv, cwd=tmp, env=env, stdout=log, stderr=log)
    page = _new_page(browser)
    seen: list[str] = []
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_up(url, 300, proc)
        page.goto(url)
        assert f"dashboard: {url}" in (tmp / "simulate.log").read_text()
        counter = page.locator("#round-counter")
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while "the run is done" not in (tmp / "simulate.log").read_text():
            assert proc.poll() is None, (tmp / "simulate.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the simulation did not finish"
            text = counter.text_content() or ""
            if text and (not seen or seen[-1] != text):
                seen.append(text)
            time.sleep(0.5)
        final = f"{ROUNDS} of {ROUNDS} rounds done"
        page.locator("#round-counter", has_text=final).wait_for(timeout=30_000)
        page.locator("#audit-status", has_text="Verified").wait_for(timeout=120_000)
        seen.append(counter.text_content() or "")
        _screenshot(page, "dashboard-simulation.png")
        yield {"page": page, "seen": seen, "out": out}
    finally:
        page.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # the dashboard serves until Ctrl+C
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _done(text: str) -> int | None:
    """Rounds done in the counter's text ("Round 2 of 2 under way (1 done)",
    "2 of 2 rounds done"); None before the federation starts."""
    found = re.search(r"\((\d+) done\)", text) or re.match(r"(\d+) of", text)
    return int(found.group(1)) if found else None


def test_the_round_counter_advances_during_the_run(simulated: dict) -> None:
    seen = simulated["seen"]
    done = [n for n in map(_done, seen) if n is not None]
    assert done == sorted(done), seen  # never goes back
    assert done[-1] == ROUNDS and len(set(done)) >= 2, seen
    assert any("under way" in text for text in seen), seen


def test_every_hospital_is_listed_with_its_epsilon(simulated: dict) -> None:
    rows = simulated["page"].locator("#hospital-table tbody tr")
    assert rows.count() == 3
    for i in range(3):
        row = rows.nth(i)
        assert row.locator("th").text_content() == f"hospital_0{i + 1}"
        epsilon = row.locator("td").nth(3).text_content() or ""
        assert re.search(r"\d+\.\d\d of 8\.00 \(\d+%\)", epsilon), epsilon
        assert "simulation only" in epsilon


def test_the_audit_log_reads_verified(simulated: dict) -> None:
    status = simulated["page"].locator("#audit-status")
    assert (status.text_content() or "").startswith("Verified")
    assert status.get_attribute("data-status") == "verified"


def test_a_tampered_audit_log_reads_broken(
    simulated: dict, browser: Any, tmp_path: Path
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(simulated["out"], copy, ignore=shutil.ignore_patterns("cohort"))
    run_folders.tamper(copy, line=1)
    page = _new_page(browser)
    with _dashboard(copy) as url:
        page.goto(url)
        status = page.locator("#audit-status", has_text="Broken at record 1")
        status.wait_for(timeout=60_000)
        assert status.get_attribute("data-status") == "broken"
        _screenshot(page, "dashboard-tampered.png")
    page.close()


def test_an_empty_folder_shows_its_message(browser: Any, tmp_path: Path) -> None:
    page = _new_page(browser)
    with _dashboard(tmp_path) as url:
        page.goto(url)
        message = page.locator("#message", has_text="is empty")
        message.wait_for(timeout=30_000)
        assert page.locator("#hospitals").is_hidden()
        _screenshot(page, "dashboard-empty.png")
    page.close()


def test_the_page_is_keyboard_navigable(simulated: dict) -> None:
    from playwright.sync_api import expect

    page = simulated["page"]
    page.locator("body").focus()
    page.keyboard.press("Tab")
    expect(page.locator("a.skip")).to_be_focused()
    page.keyboard.press("Enter")  # the skip link moves focus to the run
    expect(page.locator("#main")).to_be_focused()
    link = page.locator("#download-list a").first
    link.focus()
    expect(link).to_be_focused()
    assert page.locator("#hospital-table caption").text_content()
