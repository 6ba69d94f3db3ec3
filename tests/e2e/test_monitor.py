"""`model-registry monitor` against scripts/local_api.py: captured inputs against the version's
reference rows, its predictions by hour, and a page that a real headless browser opens and
draws, charts included."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import joblib
import numpy
import pytest
from matplotlib import image

from tests.support.http import cli, cli_json
from tests.support.models import distinct_model_bytes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# matplotlib's first two colours: the reference's bars and the captured rows'
REFERENCE_BLUE, CAPTURED_ORANGE = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)


def psi(reference: Any, captured: Any) -> float:
    """The documented PSI, worked out here from numpy's deciles of the reference."""
    edges = numpy.unique(numpy.quantile(reference, numpy.linspace(0, 1, 11)))[1:-1]
    then = numpy.bincount(numpy.searchsorted(edges, reference, "right"), minlength=len(edges) + 1)
    now = numpy.bincount(numpy.searchsorted(edges, captured, "right"), minlength=len(edges) + 1)
    then = numpy.maximum(then / then.sum(), 1e-4)
    now = numpy.maximum(now / now.sum(), 1e-4)
    return float(numpy.sum((now - then) * numpy.log(now / then)))


@pytest.fixture(scope="module")
def monitored_url(module_api_url: str) -> str:
    return module_api_url


@pytest.fixture(scope="module")
def monitored(monitored_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A version with 200 reference rows kept at registration (and an input_example of 20),
    and 150 captured rows whose first column moved. One server for the module: each test
    names the version it reads."""
    api_url, tmp_path = monitored_url, tmp_path_factory.mktemp("monitored")
    rng = numpy.random.default_rng(0)
    reference = rng.normal(size=(200, 2)).round(4)
    for name, rows in (("example.jsonl", reference[:20]), ("reference.jsonl", reference)):
        (tmp_path / name).write_text("".join(json.dumps(row) + "\n" for row in rows.tolist()))
    (tmp_path / "model.joblib").write_bytes(distinct_model_bytes(1))
    cli_json(
        api_url, "register", str(tmp_path / "model.joblib"), "--name", "churn",
        "--input-example", str(tmp_path / "example.jsonl"),
        "--reference", str(tmp_path / "reference.jsonl"),
    )  # fmt: skip
    cli_json(api_url, "capture", "churn", "--sample-percent", "100")
    captured = (rng.normal(size=(150, 2)) + numpy.array([1.0, 0.0])).round(4)
    for batch in numpy.array_split(captured, 3):
        cli_json(api_url, "classify", "churn", "--instances", json.dumps(batch.tolist()))
    model = joblib.load(tmp_path / "model.joblib")
    return {"reference": reference, "captured": captured, "model": model, "dir": tmp_path}


def test_the_monitor_compares_captured_inputs_with_the_reference_and_counts_predictions(
    monitored_url: str, monitored: dict[str, Any]
) -> None:
    api_url = monitored_url
    report = cli_json(api_url, "monitor", "churn", "--version", "1")

    reference, captured = monitored["reference"], monitored["captured"]
    assert (report["version"], report["reference_rows"], report["captured_rows"]) == (1, 200, 150)
    moved, kept = report["columns"]
    assert moved["psi"] == pytest.approx(psi(reference[:, 0], captured[:, 0]), rel=1e-12)
    assert kept["psi"] == pytest.approx(psi(reference[:, 1], captured[:, 1]), rel=1e-12)
    assert moved["psi"] > 0.25 > kept["psi"]  # the first column moved by a standard deviation
    assert moved["missing_captured"] == moved["missing_reference"] == 0.0
    (hour,) = report["predictions"]
    predictions = monitored["model"].predict(captured)
    assert hour["rows"] == 150
    assert hour["shares"] == {
        str(label): float(numpy.mean(predictions == label)) for label in (0, 1)
    }
    text = cli(api_url, "monitor", "churn", "--version", "1").stdout
    assert "shift" in text and "predictions by hour" in text


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: `apt-get install chromium` (.ci/run)")
def test_the_monitor_page_opens_in_a_headless_browser_and_draws_its_charts(
    monitored_url: str, monitored: dict[str, Any], tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    cli(monitored_url, "monitor", "churn", "--version", "1", "--html", str(page))
    text = page.read_text()
    assert "<script" not in text and "http" not in text.split("<svg", 1)[0]  # self-contained
    assert CHROMIUM is not None
    browser = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
        "--window-size=1300,1400",
    ]  # fmt: skip
    dom = subprocess.run(
        [*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert dom.count("<figure") == 3 and dom.count("<svg") == 3  # two columns and predictions
    assert "churn version 1: monitor" in dom
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [*browser, f"--screenshot={screenshot}", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    pixels = (image.imread(screenshot)[:, :, :3] * 255).round().astype(int)

    def drawn(colour: tuple[int, int, int]) -> int:
        return int((numpy.abs(pixels - numpy.array(colour)).sum(axis=2) <= 6).sum())

    # the bars of both series are on screen, not just the page's text
    assert drawn(REFERENCE_BLUE) > 2_000 and drawn(CAPTURED_ORANGE) > 2_000


def test_without_kept_reference_rows_the_input_example_is_the_reference(
    monitored_url: str, monitored: dict[str, Any], tmp_path: Path
) -> None:
    api_url = monitored_url
    (tmp_path / "other.joblib").write_bytes(distinct_model_bytes(2))
    example = monitored["dir"] / "example.jsonl"
    version = cli_json(api_url, "register", str(tmp_path / "other.joblib"), "--name", "churn",
                       "--input-example", str(example))["version"]  # fmt: skip
    cli_json(api_url, "classify", "churn", "--version", str(version),
             "--instances", "[[0.5, 0.25]]")  # fmt: skip
    report = cli_json(api_url, "monitor", "churn", "--version", str(version))
    assert (report["reference_rows"], report["captured_rows"]) == (20, 1)
    done = cli(api_url, "monitor", "nobody", check=False)
    assert done.returncode == 1 and "no model named" in done.stderr
