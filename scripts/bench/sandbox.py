"""What the validator's sandbox costs a registration: each measure, and a tainted restart.

Validates two artifacts through the local validator as `make run` runs it (a worker process,
its zygote and a child per artifact: ChildProcessInvoker in registry/registering/validator.py):
a joblib LogisticRegression, which the validator converts to a skops copy, and a 50-tree
forest saved with skops, which it compiles. Each is timed with every measure on, with each
measure left off in turn (SandboxMeasures in registry/inspecting/isolation.py), and with all
of them off. Then the
built validator function's cold start (`make package`): a bare `python3.12 -I -S -B` that
imports its handler (credentials dropped, namespaces, the zygote started, everything a
child may import imported) and validates one artifact, which is what the next registration
pays after a tainted sandbox made the function exit.

`python -m bench` runs it after the other families and writes docs/sandbox-benchmarks.md.
"""

import base64
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
import joblib  # noqa: E402
import skops.io  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from registry.config import PicklePolicy  # noqa: E402
from registry.errors import ValidatorUnavailableError  # noqa: E402
from registry.inspecting.isolation import SandboxMeasures  # noqa: E402
from registry.manifest import ArtifactFormat  # noqa: E402
from registry.registering.validator import ChildProcessInvoker, Validator  # noqa: E402
from registry.store import LocalStore  # noqa: E402

BUILD = REPO_ROOT / ".aws-sam" / "build"
# The built validator, invoked once in a bare interpreter: import (init) and one validation.
COLD_VALIDATOR = r"""
import json, sys, time
started = time.perf_counter()
sys.path[:0] = json.loads(sys.argv[1])
import app
initialised = time.perf_counter()
answer = app.lambda_handler(json.loads(sys.stdin.buffer.read()), None)
done = time.perf_counter()
assert "estimator" in answer, answer
print(json.dumps([initialised - started, done - initialised]))
"""


def artifacts() -> dict[str, tuple[bytes, ArtifactFormat]]:
    features, labels = make_moons(n_samples=200, noise=0.3, random_state=0)
    linear = io.BytesIO()
    joblib.dump(LogisticRegression().fit(features, labels), linear)
    forest = RandomForestClassifier(n_estimators=50, random_state=0).fit(features, labels)
    return {
        "joblib LogisticRegression (to skops)": (linear.getvalue(), ArtifactFormat.JOBLIB),
        "skops forest, 50 trees (compiled)": (skops.io.dumps(forest), ArtifactFormat.SKOPS),
    }


def registration_ms(off: list[str], reps: int) -> tuple[dict[str, float], float] | None:
    """Median milliseconds per artifact with these measures off, and the first validation's
    (the worker and its zygote starting); None where the sandbox refuses to run so."""
    invoker = ChildProcessInvoker(PicklePolicy.CONVERT, measures_off=",".join(off))
    with tempfile.TemporaryDirectory() as scratch:
        validator = Validator(invoker, "local", LocalStore(scratch), 1 << 27, inline_limit=None)
        try:
            cases = artifacts()
            started = time.perf_counter()
            first_data, first_format = next(iter(cases.values()))
            try:
                validator.validate("bench", first_data, first_format, [[0.5, 0.2]])
            except ValidatorUnavailableError:  # its import path is writable without them
                return None
            first = (time.perf_counter() - started) * 1000
            medians = {}
            for name, (data, format) in cases.items():
                times = []
                for _ in range(reps):
                    started = time.perf_counter()
                    validator.validate("bench", data, format, [[0.5, 0.2]])
                    times.append((time.perf_counter() - started) * 1000)
                medians[name] = statistics.median(times)
        finally:
            invoker.close()
    return medians, first


def cold_validator_ms(reps: int) -> tuple[float, float] | None:
    """The built validator's init and first validation, medians in ms; None without a build."""
    layer = BUILD / "RegistryLayer" / "python"
    if not layer.is_dir():
        return None
    paths = json.dumps([str(BUILD / "ValidateFunction"), str(layer)])
    data, _ = next(iter(artifacts().values()))
    encoded = base64.b64encode(data).decode()
    payload = json.dumps({"format": "joblib", "max_bytes": 1 << 27, "artifact_base64": encoded})
    runs = []
    for _ in range(reps):
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-B", "-c", COLD_VALIDATOR, paths],
            input=payload.encode(),
            capture_output=True,
            env={"PATH": "/usr/bin:/bin", "AWS_LAMBDA_FUNCTION_NAME": "validate"},
            check=True,
            cwd="/",
        )
        runs.append(json.loads(done.stdout.decode().splitlines()[-1]))
    return (
        statistics.median(run[0] for run in runs) * 1000,
        statistics.median(run[1] for run in runs) * 1000,
    )


def write_sandbox_report(quick: bool, output: Path) -> Path:
    """Measure, print the table, and write it to output."""
    reps = 3 if quick else 15
    measures = [field.name for field in fields(SandboxMeasures)]
    # --quick (make test) leaves out the measures whose cost is a rounding error
    left_out = measures if not quick else ["private_filesystem", "seccomp", "reap"]
    configurations = {"every measure": [], **{f"without {m}": [m] for m in left_out}}
    configurations["no measure"] = measures
    results = {label: registration_ms(off, reps) for label, off in configurations.items()}
    names = list(artifacts())
    lines = [
        "# What the sandbox costs a registration",
        "",
        "Written by `make bench` (`scripts/bench/sandbox.py`); median ms of a"
        f" validation through the local validator, {reps} runs each, on this machine"
        f" ({sys.platform}, Python {sys.version.split()[0]}).",
        "",
        "| measures | " + " | ".join(names) + " | first validation (worker + zygote start) |",
        "| --- | " + " | ".join("---:" for _ in names) + " | ---: |",
    ]
    for label, result in results.items():
        if result is None:
            refused = " | ".join("refuses to run: its import path is writable" for _ in names)
            lines.append(f"| {label} | {refused} | - |")
            continue
        medians, first = result
        cells = " | ".join(f"{medians[name]:.1f}" for name in names)
        lines.append(f"| {label} | {cells} | {first:.0f} |")
    every_result, none_result = results["every measure"], results["no measure"]
    assert every_result is not None and none_result is not None
    every, none = every_result[0], none_result[0]
    lines += ["", "Ratios, every measure / no measure:"]
    lines += [f"- {name}: {every[name] / none[name]:.2f}" for name in names]
    cold = cold_validator_ms(3 if quick else 7)
    lines.append("")
    if cold is None:
        lines.append("The built validator's cold start: no build (make package).")
    else:
        init, first = cold
        lines.append(
            "The built validator function's cold start, in a bare python3.12 -I -S -B (what the"
            f" next registration pays after a tainted sandbox made the function exit): init"
            f" {init:.0f} ms, then its first validation {first:.0f} ms; {init + first:.0f} ms in"
            f" all, against {every[names[0]]:.1f} ms for a warm validation of the same artifact"
            f" ({(init + first) / every[names[0]]:.0f}x)."
        )
    text = "\n".join(lines) + "\n"
    print(text)
    output.write_text(text)
    return output
