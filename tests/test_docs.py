"""The docs site: it builds strictly, documents the public names, and renders in a browser.

The browser checks need Debian's ``chromium`` (``.ci/run`` installs it and sets
``METAROBUST_REQUIRE_BROWSER=1``, so in CI they cannot be skipped); without it they skip with
that reason.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import metarobust
from metarobust.api import algorithm_class
from metarobust.config import Config, TrainConfig, describe_fields, load_config

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium")
WINDOW = (1280, 1600)
# As root in a closed network: no sandbox, no GPU, no calls home.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built by ``mkdocs build --strict`` from this checkout."""
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    return out


def test_every_public_name_has_a_reference_entry(site):
    api = (site / "api" / "index.html").read_text()
    names = [f"{module}.{name}" for name, module in metarobust._API.items()]
    choices = TrainConfig.model_fields["algorithm"].annotation.__args__
    algorithms = {
        algorithm_class(load_config(None, [f"train.algorithm={name}"])) for name in choices
    }
    names += [f"{cls.__module__}.{cls.__qualname__}" for cls in algorithms]
    missing = [name for name in names if f'id="{name}"' not in api]
    assert not missing, f"no API reference entry for {missing}"


def test_configuration_reference_is_what_metarobust_config_prints(site):
    page = (site / "configuration" / "index.html").read_text()
    block = re.search(r"<pre><span></span><code>(.*?)</code></pre>", page, re.S)
    assert block, "the configuration page has no code block"
    text = html.unescape(re.sub(r"<[^>]+>", "", block[1]))
    assert text.rstrip("\n") == describe_fields(Config)


def test_results_tables_come_from_the_result_files(site):
    page = (site / "results" / "adversarial" / "index.html").read_text()
    assert "benchmarks/results/rarl_hopper_summary.csv" in page
    # a CSV row rendered at one decimal: method, seed, then the grid mean
    first = (ROOT / "benchmarks/results/rarl_hopper_summary.csv").read_text().splitlines()[1]
    method, seed, grid_mean = first.split(",")[:3]
    cells = f"<td>{method}</td>\n<td>{seed}</td>\n<td>{float(grid_mean):.1f}</td>"
    assert cells in page


def browser() -> str:
    if CHROMIUM is None:
        if os.environ.get("METAROBUST_REQUIRE_BROWSER"):
            pytest.fail("METAROBUST_REQUIRE_BROWSER is set but chromium is not on PATH")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    return CHROMIUM


def render(page: Path, tmp_path: Path) -> tuple[str, tuple[int, int], int]:
    """The DOM after scripts ran, and the screenshot's (width, height) and size in bytes."""
    chromium, profile = browser(), tmp_path / "profile"
    common = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    dumped = subprocess.run(
        [*common, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    dom = dumped.stdout
    shot = tmp_path / "page.png"
    subprocess.run([*common, f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={shot}",
                    page.as_uri()], capture_output=True, timeout=120, check=True)  # fmt: skip
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
    return dom, struct.unpack(">II", header[16:24]), shot.stat().st_size


@pytest.mark.parametrize("page", ["index.html", "results/adversarial/index.html"])
def test_pages_render_their_tables_and_images(site, tmp_path, page):
    dom, size, nbytes = render(site / page, tmp_path)
    assert size == WINDOW
    assert nbytes > 20_000, "the screenshot looks blank"
    assert "md-content" in dom and "md-nav" in dom, "the theme did not render"
    images = re.findall(r'<img[^>]+src="([^"]+)"', dom)
    assert images, "no image on the page"
    for src in images:
        assert (site / page).parent.joinpath(src).resolve().is_file(), f"broken image {src}"
    if page.startswith("results"):
        rows = re.findall(r"<tr>", dom)
        assert len(rows) >= 10, "the results tables did not render"


NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?=\s?%)|(?<![\w.])-?\d+\.\d+(?![\w.])")


def readme_numbers() -> set[str]:
    """The README's results: every number with a decimal point or a percent sign, outside
    code blocks and inline code (commands, config values)."""
    text = (ROOT / "README.md").read_text().replace("\u2212", "-")  # a typeset minus
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    return set(NUMBER.findall(text))


def results_numbers() -> list[float]:
    found = []
    for file in (ROOT / "benchmarks" / "results").rglob("*"):
        if file.is_file():
            found += [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", file.read_text())]
    return found


def test_every_number_in_the_readme_is_in_a_result_file():
    known = results_numbers()

    def found(number: str) -> bool:
        decimals = len(number.partition(".")[2])
        value, tolerance = float(number), 0.5 * 10**-decimals + 1e-9
        # a percentage may be stored as a fraction
        return any(abs(x - value) <= tolerance or abs(100 * x - value) <= tolerance
                   for x in known)  # fmt: skip

    missing = sorted(number for number in readme_numbers() if not found(number))
    assert not missing, f"README numbers found in no file under benchmarks/results/: {missing}"
