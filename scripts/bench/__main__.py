"""Benchmark the prediction path against the blog's design and against raw scikit-learn.

One run, against moto's ThreadedMotoServer on 127.0.0.1 as the S3 endpoint,
invoking the real handlers in-process with API Gateway REST events. Every
figure is a median over many repetitions, and what is reported are ratios
measured side by side (absolute times on a shared machine are noise).

    python -m bench          # full run: writes docs/benchmarks.md and docs/benchmarks.png
    python -m bench --quick  # few repetitions, to a temporary folder (make test runs it)

The local server is also measured against `mlflow models serve` on the same model, when
the MLflow venv that `make bench` installs (.venv-mlflow) is there; without it those rows
are reported as skipped, so neither `make test` nor this script's own venv needs MLflow.
"""

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from moto.server import ThreadedMotoServer
from train_moons import train_moons

from bench.batch import BatchRows
from bench.capture import CaptureRows
from bench.cli import CliRows
from bench.cold_start import ColdInitRows, built_cold_start_rows
from bench.common import (
    BUCKET,
    REPO_ROOT,
    Row,
    quiet,
)
from bench.harness import Harness
from bench.local_server import LocalServerRows
from bench.report import write_report
from bench.routing import RoutingRows
from bench.sandbox import write_sandbox_report
from bench.threads import ThreadRows
from bench.warm import WarmRows
from registry.http import service


class Bench(
    WarmRows,
    CaptureRows,
    LocalServerRows,
    CliRows,
    RoutingRows,
    BatchRows,
    ThreadRows,
    ColdInitRows,
    Harness,
):
    """Every family of measurements, over one harness."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions, for make test")
    parser.add_argument(
        "--output-dir", type=Path, help="default: docs/ (a temp folder with --quick)"
    )
    parser.add_argument(
        "--mlflow-venv",
        type=Path,
        default=REPO_ROOT / ".venv-mlflow",
        help="the venv with MLflow to compare the local server with (default: .venv-mlflow;"
        " its rows are skipped when it is absent)",
    )
    parser.add_argument(
        "--skip-sandbox", action="store_true", help="leave out what the sandbox costs"
    )
    args = parser.parse_args()
    output_dir = args.output_dir or (
        Path(tempfile.mkdtemp(prefix="bench-report-")) if args.quick else REPO_ROOT / "docs"
    )

    for variable, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        os.environ[variable] = value
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL_S3=endpoint,
        REGISTRY_URI=f"s3://{BUCKET}/registry",
        MAX_INSTANCES=str(Bench.largest_batch()),
        ALIAS_TTL_SECONDS="30",
    )
    service.reset()
    try:
        bench = Bench(endpoint, args.quick, args.mlflow_venv)
        if skip_reason := bench.mlflow_skip_reason():
            print(f"skipping the mlflow models serve rows: {skip_reason}", flush=True)
        bench.s3.create_bucket(Bucket=BUCKET)
        rows: list[Row] = []
        with quiet():
            rows += bench.model_rows("blog's model", "moons", train_moons())
            trees = 30 if args.quick else 300
            rows += bench.model_rows(f"{trees} trees", "forest", train_moons(n_estimators=trees))
            rows += bench.capture_rows()
            rows.append(bench.validation_row())
            rows.append(bench.memory_row())
            rows += bench.native_thread_rows()
            rows += bench.local_server_rows()
            rows += bench.cli_rows()
            rows += bench.routing_rows()
            rows += bench.batch_rows()
        rows += bench.cold_init_rows()
        rows += built_cold_start_rows(args.quick)
    finally:
        server.stop()

    width = max(len(row.name) for row in rows)
    for row in rows:
        print(f"{row.name.ljust(width)}  {row.ratio_text():>8}  {row.goal():14}  {row.detail}")
    notes = [bench.routing_cost_text(), bench.batch_cost_text()]
    report = write_report(rows, output_dir, args.quick, bench.mlflow_versions, notes)
    print(f"wrote {report} and {report.with_suffix('.png').name}")
    if not args.skip_sandbox:
        sandbox = write_sandbox_report(args.quick, output_dir / "sandbox-benchmarks.md")
        print(f"wrote {sandbox}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
