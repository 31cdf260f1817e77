"""The browser view in a real browser: Debian's headless chromium driven by Playwright.

One test walks the page the way a user would (render, Step, Play/Pause, slider +
Reset) against ``solara run experiments.view`` in a child process, with every
request that leaves the server's own origin refused, so it also proves the page
needs no CDN. Its screenshot goes to the test's temporary directory, and to
``docs/view.png`` for the README when ``UNWIND_SCREENSHOT=1`` (``make screenshot``),
so a test run leaves the working tree as it found it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments import view

CHROMIUM, CHROMIUM_ARGS = view.CHROMIUM, list(view.CHROMIUM_ARGS)
README_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "view.png"
STARTUP_S = 60.0
WAIT_MS = 30_000

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The view server on a free port, its output in a log; stopped afterwards."""
    port = view.free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = view.start_server("jan2024", port, output=out)
    try:
        try:
            view.wait_until_up(url, proc, STARTUP_S)
        except RuntimeError as exc:
            pytest.fail(f"{exc}:\n{log.read_text()}")
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chart_images(page) -> dict[str, str]:
    """Each chart's canvas as a data URL, to tell whether a chart was redrawn."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.unwind-chart')].map(
            el => [[...el.classList].find(c => c !== 'unwind-chart' && c.startsWith('unwind-'))
                     .slice('unwind-'.length),
                   el.querySelector('canvas').toDataURL()]))"""
    )


def painted_pixels(page) -> list[int]:
    """Non-transparent pixels of each chart canvas: zero means nothing was drawn."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.unwind-chart canvas')].map(c => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
            return n;
        })"""
    )


def model_time(page) -> float:
    text = page.get_by_text(re.compile(r"^Time: ")).inner_text()
    return float(text.removeprefix("Time: "))


def wait_for_time(page, value: float) -> None:
    page.get_by_text(f"Time: {value:.1f}", exact=True).wait_for(timeout=WAIT_MS)


def settled_time(page, quiet_ms: int = 1000) -> float:
    """The step counter once it has not moved for ``quiet_ms``: a step under way when
    Pause was clicked lands first, however long a busy machine takes over it."""
    seen = model_time(page)
    for _ in range(WAIT_MS // quiet_ms):
        page.wait_for_timeout(quiet_ms)
        now = model_time(page)
        if now == seen:
            return now
        seen = now
    pytest.fail(f"the step counter was still moving {WAIT_MS} ms after Pause")


def test_view_in_a_browser(server, tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (`make test` does, via "
            "`apt-get install chromium`); never `playwright install`."
        )
    from playwright.sync_api import sync_playwright

    url, log = server
    offsite: list[str] = []

    def local_only(route) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:
            offsite.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1250})
            page.route("**/*", local_only)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)

            # Every chart renders, from assets served by the view server alone.
            page.wait_for_function(
                f"document.querySelectorAll('.unwind-chart canvas').length == {len(view.CHARTS)}",
                timeout=WAIT_MS,
            )
            wait_for_time(page, 0.0)
            assert page.locator(".unwind-chart").count() == len(view.CHARTS)
            assert all(n > 0 for n in painted_pixels(page)), painted_pixels(page)
            assert "jan2024 · seed 1 · 300 stocks" in page.locator(".unwind-config").inner_text()

            # Step advances Mesa's clock ("Time: N") and redraws the charts.
            before = chart_images(page)
            page.get_by_role("button", name="Step").click()
            wait_for_time(page, 1.0)
            page.locator(".unwind-index .unwind-caption", has_text="step 1,").wait_for()
            page.wait_for_timeout(300)  # let ECharts paint the new options
            after = chart_images(page)
            redrawn = {name for name in before if before[name] != after[name]}
            assert {"index", "basis", "size-return"} <= redrawn, redrawn

            # Play runs several steps; Pause stops it.
            page.get_by_role("button", name="▶").click()
            page.wait_for_function(
                """() => {const t = [...document.querySelectorAll('span')]
                          .find(s => s.textContent.startsWith('Time: '));
                          return t && parseFloat(t.textContent.slice(6)) >= 5;}""",
                timeout=WAIT_MS,
            )
            page.get_by_role("button", name="❚❚").click()
            page.get_by_role("button", name="▶").wait_for(timeout=WAIT_MS)
            paused_at = settled_time(page)
            assert paused_at >= 5.0
            page.wait_for_timeout(2000)
            assert model_time(page) == paused_at  # Pause held
            shot = tmp_path / "view.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get("UNWIND_SCREENSHOT") == "1":
                shutil.copyfile(shot, README_SCREENSHOT)

            # A moved slider and Reset rebuild the model with the new value.
            label, lo, hi, _ = view.SLIDERS["neutral.dma_leverage"]
            key, target = (
                ("End", hi) if view.BASELINE["neutral.dma_leverage"] < hi else ("Home", lo)
            )
            slider = page.locator(".v-input__slider", has_text=label).locator(".v-slider__thumb")
            slider.click()
            page.keyboard.press(key)  # to one end of the slider, away from where it started
            page.get_by_role("button", name="Reset").click()
            wait_for_time(page, 0.0)
            page.locator(".unwind-config", has_text=f"DMA leverage {target:.1f}x").wait_for(
                timeout=WAIT_MS
            )
            page.locator(".unwind-index .unwind-caption", has_text="step 0,").wait_for()
            assert not errors, errors
        finally:
            browser.close()

    assert not offsite, f"requests left the server (a CDN?): {offsite}"
    assert "Could not load URL" not in log.read_text()  # Solara's asset proxy missed its cache
