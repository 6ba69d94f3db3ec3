"""The benchmark's quick mode, so it never rots. Speed goals belong to the benchmark, not here."""

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_benchmark_runs_every_measure_and_writes_its_report(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--output-dir",
            str(tmp_path),
            "--mlflow-venv",
            str(tmp_path / "no-mlflow-venv"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO_ROOT / "scripts",
    )

    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "benchmarks.md").read_text()
    for measure in (
        "warm single row / raw predict",
        "blog request / warm single row",
        "1,000 rows / raw predict",
        "first request of a version / blog request",
        "memory: peak RSS",
        "cold init",
        "Pydantic validation",
        "local server, kept-alive connection, single row / warm handler",
        "local server, kept-alive connection, 1,000 rows / warm handler",
        "local server / mlflow models serve, single row",
        "classify --input 20,000 rows, DataFrame pipeline / in-process predict",
        "classify --input 20,000 rows, blog's model / in-process predict",
        "routed to line 1.8 / front, single row",
        "routed to line 1.8 / front, 1,000 rows",
        "batch job, one core, 20,000 rows, blog's model / read_csv + predict",
        "batch job, one core, 20,000 rows, DataFrame pipeline with categories",
        "Batch jobs on Step Functions and Lambda, on paper",
        "local server / mlflow models serve, 1,000 rows",
        "HGB warm single row / raw predict (before: no thread limit)",
        "HGB warm single row / raw predict (after: default limit, 1 thread)",
        "HGB warm single row from a fresh thread",
        "KNN warm single row / raw predict (before: no thread limit)",
        "KNN warm single row / raw predict (after: default limit, 1 thread)",
        "KNN warm single row from a fresh thread",
        # make test builds the package before it runs the tests
        "built package, bare python3.12: import predict handler, bytecode / none",
        "built package, bare python3.12: first request (compiled forest), bytecode / none",
        "built package, bare python3.12: import + first request, compiled form / skops copy",
        "built package, bare python3.12: init with the default model preloaded / without",
    ):
        assert measure in report, measure
    assert (tmp_path / "benchmarks.png").read_bytes().startswith(b"\x89PNG")
    # make test stays lean: without the MLflow venv (only make bench installs it) those rows
    # are reported as skipped, and the run says so.
    assert "skipping the mlflow models serve rows" in result.stdout
    assert "| local server / mlflow models serve, single row | skipped |" in report
    # and what the sandbox costs a registration
    sandbox = (tmp_path / "sandbox-benchmarks.md").read_text()
    for row in ("| every measure |", "| without seccomp |", "| without reap |", "| no measure |"):
        assert row in sandbox, row
    # without its read-only filesystem, the sandbox sees a writable import path and refuses
    assert "| without private_filesystem | refuses to run" in sandbox
    assert "The built validator function's cold start" in sandbox  # make test builds first
