"""The report page as a reader's browser shows it: headless Chromium opens the built report.html
and a probe script, appended to a copy of the page, says once the page has loaded whether the
page scrolls sideways and whether each image decoded (naturalWidth > 0). The probe's answer is
written into the DOM, which `--dump-dom` prints: no driver, no DevTools client to install.

Skipped, saying so, where no Chromium is installed (.ci/run installs Debian's `chromium`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WIDTH = 1024  # px: a laptop's window, narrower than the page's 1100 px column
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    f"--window-size={WIDTH},900",
)  # fmt: skip
PROBE = """<script>
window.addEventListener("load", () => {
  const page = document.documentElement;
  const found = {
    scrollWidth: page.scrollWidth,
    clientWidth: page.clientWidth,
    images: [...document.images].map(i => ({alt: i.alt, complete: i.complete,
                                            naturalWidth: i.naturalWidth})),
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script>"""


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no headless browser found (looked for {', '.join(BROWSERS)} on PATH)")


def probe(html: Path, tmp_path: Path) -> dict:
    """What the probe saw on `html` (a copy of it, the probe appended)."""
    page = tmp_path / f"probed-{html.name}"
    page.write_text(html.read_text() + PROBE)
    profile = tmp_path / f"profile-{html.stem}"
    run = subprocess.run(
        [_browser(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the probe wrote nothing: {run.stdout[-500:]} {run.stderr[-1500:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_the_report_page_fits_the_window_and_every_image_loads(smoke_report, tmp_path):
    seen = probe(smoke_report / "report.html", tmp_path)
    pngs = len(list(smoke_report.glob("*.png")))
    assert len(seen["images"]) == pngs > 0
    broken = [i["alt"] for i in seen["images"] if not (i["complete"] and i["naturalWidth"] > 0)]
    assert not broken, f"images that did not load: {broken}"
    assert seen["clientWidth"] <= WIDTH
    assert seen["scrollWidth"] <= seen["clientWidth"], seen  # no sideways scrolling


def test_the_probe_sees_an_overflow_and_a_broken_image(smoke_report, tmp_path):
    """The checks above can fail: a page too wide for the window and an image that cannot
    decode are both seen."""
    bad = tmp_path / "bad.html"
    html = (smoke_report / "report.html").read_text()
    bad.write_text(
        html
        + "<div style='width:3000px'>wide</div>"
        + "<img alt='broken' src='data:image/png;base64,AAAA'>"
    )
    seen = probe(bad, tmp_path)
    assert seen["scrollWidth"] > seen["clientWidth"]
    (broken,) = [i for i in seen["images"] if i["alt"] == "broken"]
    assert broken["naturalWidth"] == 0
