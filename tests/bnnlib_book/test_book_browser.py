"""The built book works offline: no CDN URL in its HTML, and in headless Chromium with every
network request blocked the charts draw from the vendored vega, the sliders redraw them, math
renders from the vendored MathJax, and no script fails.

Uses ``_build/html`` when it exists, else builds the smoke book first, so ``pytest`` alone is a
complete check.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from bnnlib_book.assets import CHART_CLASS, VEGA_LIBRARIES, vendored
from bnnlib_book.build import build_book

CDN_PATTERN = re.compile(
    r"cdn\.jsdelivr|jsdelivr\.net|unpkg\.com|cdnjs\.cloudflare|ajax\.googleapis|"
    r"fonts\.googleapis|code\.jquery|mathjax\.org/|polyfill\.io|cdn\."
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-port=0",
]


@pytest.fixture(scope="session")
def html_dir() -> Path:
    html = REPO_ROOT / "_build" / "html"
    if not (html / "index.html").is_file():
        build_book("smoke", root=REPO_ROOT)
    return html


def chart_pages(html: Path) -> list[Path]:
    return [p for p in html.rglob("*.html") if f'class="{CHART_CLASS}"' in p.read_text()]


def test_built_html_has_no_cdn_url(html_dir: Path) -> None:
    pages = sorted(html_dir.rglob("*.html"))
    assert pages
    offenders = {
        str(p.relative_to(html_dir)): sorted(set(CDN_PATTERN.findall(p.read_text()))) for p in pages
    }
    assert {page: hits for page, hits in offenders.items() if hits} == {}


def test_vega_scripts_only_on_chart_pages(html_dir: Path) -> None:
    charts = chart_pages(html_dir)
    assert charts, "the smoke book should contain at least one chart"
    files = [vendored()[name]["file"] for name in VEGA_LIBRARIES]
    for page in html_dir.rglob("*.html"):
        text = page.read_text()
        present = [f for f in files if f"_static/{f}" in text]
        assert present == (files if page in charts else []), page
    for f in files:
        assert (html_dir / "_static" / f).is_file()


class Chromium:
    """Just enough of the Chrome DevTools Protocol: navigate, evaluate, collect events."""

    def __init__(self, binary: str, profile_dir: Path) -> None:
        import websocket

        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            targets = json.load(answer)
        page = next(t for t in targets if t["type"] == "page")
        self.socket = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True
        )
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, **params: object) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def evaluate(self, expression: str) -> object:
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")

    def open(self, url: str) -> None:
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def problems(self) -> list[str]:
        """Failed loads, requests that tried the network, JS exceptions and console errors."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if not url.startswith(("file:", "data:", "blob:", "about:")):
                    found.append(f"network request: {url}")
            elif method == "Network.loadingFailed":
                found.append(f"load failed: {params.get('errorText')} ({params.get('requestId')})")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(
                    f"console: {params['entry'].get('text')} {params['entry'].get('url', '')}"
                )
        return found

    def close(self) -> None:
        if hasattr(self, "socket"):
            self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    chromium = Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    for domain in ("Page", "Network", "Runtime", "Log"):
        chromium.send(f"{domain}.enable")
    chromium.send("Network.setBlockedURLs", urls=["http://*", "https://*", "ws://*", "wss://*"])
    yield chromium
    chromium.close()


CHART_PICTURE = """(() => {
  const el = document.querySelectorAll('.%s')[%d];
  const canvas = el && el.querySelector('canvas');
  if (canvas) return canvas.toDataURL();
  const svg = el && el.querySelector('svg.marks');
  return svg ? svg.outerHTML : null;
})()"""


@pytest.mark.browser
def test_quickstart_chart_draws_offline_and_slider_redraws(
    browser: Chromium, html_dir: Path
) -> None:
    browser.open((html_dir / "notebooks" / "00_quickstart.html").as_uri())
    picture = CHART_PICTURE % (CHART_CLASS, 0)
    before = browser.wait_for(picture)
    assert browser.evaluate("typeof vegaEmbed") == "function"
    slider_count = browser.evaluate(
        f"document.querySelectorAll('.{CHART_CLASS}')[0].querySelectorAll('input[type=range]').length"
    )
    assert slider_count == 2
    if before.startswith("data:image/png;base64,"):
        assert len(base64.b64decode(before.split(",", 1)[1])) > 1000
    browser.evaluate(
        f"""(() => {{
          const slider = document.querySelectorAll('.{CHART_CLASS}')[0].querySelector('input[type=range]');
          slider.value = slider.value === slider.min ? slider.max : slider.min;
          slider.dispatchEvent(new Event('input', {{bubbles: true}}));
          slider.dispatchEvent(new Event('change', {{bubbles: true}}));
          return slider.value;
        }})()"""
    )
    after = browser.wait_for(
        f"(() => {{ const p = {picture}; return p !== {json.dumps(before)} && p; }})()"
    )
    assert after != before
    assert browser.problems() == []


@pytest.mark.browser
def test_math_renders_offline(browser: Chromium, html_dir: Path) -> None:
    browser.open((html_dir / "book" / "intro.html").as_uri())
    assert browser.wait_for("document.querySelectorAll('mjx-container svg').length") >= 2
    assert browser.evaluate(f"document.querySelectorAll('.{CHART_CLASS}').length") == 0
    assert browser.problems() == []


@pytest.mark.browser
def test_reconstruction_chart_shows_images_and_switches_model(
    browser: Chromium, tmp_path: Path
) -> None:
    import numpy as np

    from bnnlib_book import charts as report
    from bnnlib_book.assets import VENDOR_DIR

    def example(value: int) -> dict:
        image = np.full((8, 8, 3), value, dtype=np.uint8).tolist()
        return {
            "index": 0,
            "psnr_peak1": 20.0,
            "psnr_peak2": 26.02,
            "noisy": image,
            "output": image,
            "clean": image,
        }

    chart = report.reconstruction_chart(
        {"dark": {"median": example(20)}, "light": {"median": example(230)}}
    )
    report.use_renderer(interactive=False)
    try:
        bundle = chart._repr_mimebundle_()
    finally:
        report.use_renderer(interactive=True)
    html = bundle["text/html"] if isinstance(bundle, dict) else bundle[0]["text/html"]
    scripts = "".join(
        f'<script src="{(VENDOR_DIR / vendored()[name]["file"]).as_uri()}"></script>'
        for name in VEGA_LIBRARIES
    )
    page = tmp_path / "reconstructions.html"
    page.write_text(f"<!DOCTYPE html><html><head>{scripts}</head><body>{html}</body></html>")
    browser.open(page.as_uri())
    picture = CHART_PICTURE % (CHART_CLASS, 0)
    before = browser.wait_for(picture)
    browser.evaluate(
        f"""(() => {{
          const select = document.querySelector('.{CHART_CLASS} select');
          select.value = 'light';
          select.dispatchEvent(new Event('change', {{bubbles: true}}));
        }})()"""
    )
    after = browser.wait_for(
        f"(() => {{ const p = {picture}; return p !== {json.dumps(before)} && p; }})()"
    )
    assert after != before
    assert browser.problems() == []


PAGE_READING = r"""(() => {
  const article = document.querySelector('article') || document.body;
  const main = document.querySelector('.bd-main') || article;
  const out = {truncated: [], nan: [], wide: [], axes: [], sliders: []};
  document.querySelectorAll('td, th').forEach(cell => {
    const text = cell.textContent.trim();
    if (/(\.\.\.|…)$/.test(text)) out.truncated.push(text.slice(-50));
    if (/\bNaN\b|^nan$/.test(text)) out.nan.push(text.slice(0, 50));
  });
  document.querySelectorAll('table').forEach(table => {
    const column = table.closest('.tag_full-width') ? main : article;
    const over = table.getBoundingClientRect().right - column.getBoundingClientRect().right;
    if (over > 1) out.wide.push(`${table.rows.length}-row table ${Math.round(over)} px too wide`);
  });
  document.querySelectorAll('.%(cls)s').forEach((el, i) => {
    const walk = mark => {
      if (mark.role === 'axis-title') (mark.items || []).forEach(item => out.axes.push(item.text));
      (mark.items || []).forEach(item => (item.items || []).forEach(walk));
    };
    walk(el.vegaView.scenegraph().root);
    el.querySelectorAll('input[type=range]').forEach(input => {
      const shown = input.parentNode.querySelector('.bnnlib-slider-value');
      out.sliders.push({chart: i, name: input.name, shown: shown ? shown.textContent : null,
                        value: Number(input.value), max: Number(input.max)});
    });
  });
  return out;
})()"""

SLIDER_MOVE = r"""(async () => {
  const el = document.querySelectorAll('.%(cls)s')[%(chart)d];
  const input = el.querySelector('input[type=range][name="%(name)s"]');
  const before = el.vegaView.scale('y').domain();
  input.value = input.max;
  input.dispatchEvent(new Event('input', {bubbles: true}));
  await el.vegaView.runAsync();
  await new Promise(done => setTimeout(done, 50));
  return {before, after: el.vegaView.scale('y').domain(),
          shown: input.parentNode.querySelector('.bnnlib-slider-value').textContent};
})()"""


def book_pages(html: Path) -> list[Path]:
    """Every page a reader reaches from the table of contents (not Sphinx's index or search, nor
    the redirect to the first page)."""
    return sorted(
        p
        for p in html.rglob("*.html")
        if "_static" not in p.parts
        and p.name not in ("genindex.html", "search.html")
        and 'http-equiv="Refresh"' not in p.read_text()
    )


@pytest.mark.browser
def test_every_page_reads_cleanly(browser: Chromium, html_dir: Path) -> None:
    """No table cell cut off with "..." or showing NaN, no table wider than the text column, no
    axis titled "value" or by a raw record column, every slider labelled with the value it
    stands for (not its step), and the y-axis range unchanged while a slider moves."""
    from bnnlib_book.charts import PERCENT_COLUMNS

    raw_names = {"value", *PERCENT_COLUMNS, "flip_ratio", "flip_ratio_mean", "accuracy"}
    browser.send(  # a laptop's window; the book's text column is narrower than the window
        "Emulation.setDeviceMetricsOverride",
        width=1280,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )
    try:
        found = {
            page: issues for page, issues in _read_pages(browser, html_dir, raw_names) if issues
        }
    finally:
        browser.send("Emulation.clearDeviceMetricsOverride")
    assert not found, json.dumps(found, indent=1)


def _read_pages(browser: Chromium, html_dir: Path, raw_names: set[str]):
    """(page, what a reader would trip over on it) for every page of the book."""
    for page in book_pages(html_dir):
        browser.open(page.as_uri())
        browser.wait_for(
            f"[...document.querySelectorAll('.{CHART_CLASS}')].every(el => el.vegaView)"
        )
        reading = browser.evaluate(PAGE_READING % {"cls": CHART_CLASS})
        issues = [f"truncated cell: {t}" for t in reading["truncated"]]
        issues += [f"NaN cell: {t}" for t in reading["nan"]]
        issues += reading["wide"]
        issues += [f"axis titled {t!r}" for t in reading["axes"] if t in raw_names]
        for slider in reading["sliders"]:
            where = f"chart {slider['chart']} slider {slider['name']}"
            if not slider["shown"]:
                issues.append(f"{where} shows no value")
                continue
            moved = browser.evaluate(SLIDER_MOVE % {"cls": CHART_CLASS, **slider})
            if moved["shown"] == slider["shown"] and slider["value"] != slider["max"]:
                issues.append(f"{where}: label stays {slider['shown']!r} when it moves")
            if moved["after"] != moved["before"]:
                issues.append(f"{where}: y-axis {moved['before']} -> {moved['after']}")
        issues += browser.problems()
        yield str(page.relative_to(html_dir)), issues
