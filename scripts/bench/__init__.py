"""The benchmark, one module per family of measurements; `python -m bench` (from scripts/)
runs them all and writes docs/benchmarks.md, its chart and docs/sandbox-benchmarks.md.

    common.py        the report's rows and goals, timing, ports
    harness.py       the handlers invoked in-process with API Gateway events, over moto's S3
    warm.py          warm requests against raw predict and the blog's design; memory
    local_server.py  the local server, and `mlflow models serve` beside it
    threads.py       native thread pools
    cold_start.py    cold starts, in the dev venv and in the built package
    sandbox.py       what the validator's sandbox costs a registration
    report.py        docs/benchmarks.md and its chart
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "scripts")]
