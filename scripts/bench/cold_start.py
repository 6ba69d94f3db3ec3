"""Cold starts: the handler's import in the dev venv, and the built package as Lambda runs it."""

import dataclasses
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import skops.io
from train_moons import joblib_bytes, train_moons

from bench.common import (
    BUCKET,
    REPO_ROOT,
    Row,
    fmt,
)
from registry.http import service
from registry.manifest import ServingFormat
from registry.registering.registration import Registrar
from registry.registry import ModelRegistry
from registry.store import LocalStore


class ColdInitRows:
    def cold_init_rows(self) -> list[Row]:
        """Import time of the predict handler against its third-party imports alone."""
        env = {**os.environ, "AWS_ENDPOINT_URL_S3": self.endpoint, "PYTHONPATH": str(REPO_ROOT)}
        deps = (
            "import numpy, scipy, sklearn, joblib, pydantic, boto3,"
            " aws_lambda_powertools.event_handler"
        )
        handler = (
            "import importlib.util as u; s = u.spec_from_file_location('app', "
            f"{str(REPO_ROOT / 'functions/predict/app.py')!r}); m = u.module_from_spec(s); "
            "s.loader.exec_module(m)"
        )
        reps = 3 if self.quick else 9

        def import_seconds(code: str, extra: dict[str, str]) -> float:
            timed = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
            runs = [
                float(  # the last line: what the handler logs at init comes before it
                    subprocess.run(
                        [sys.executable, "-c", timed],
                        env={**env, **extra},
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout.splitlines()[-1]
                )
                for _ in range(reps)
            ]
            return statistics.median(runs)

        uri = {"REGISTRY_URI": f"s3://{BUCKET}/registry", "DEFAULT_MODEL": "moons"}
        deps_only = import_seconds(deps, uri)
        plain = import_seconds(handler, {**uri, "PRELOAD_DEFAULT_MODEL": "false"})
        preload = import_seconds(handler, {**uri, "PRELOAD_DEFAULT_MODEL": "true"})
        return [
            Row(
                "cold init: import predict handler / its third-party imports",
                plain / deps_only,
                f"{fmt(plain)} vs {fmt(deps_only)}",
            ),
            Row(
                "cold init with the default model preloaded / without",
                preload / plain,
                f"{fmt(preload)} vs {fmt(plain)}: the load moves from the first request to init",
            ),
        ]


# Run by a bare python3.12 (-I -S -B: no site, no bytecode written, as on Lambda's read-only
# /opt) with the built predict function, its layer and boto3 on the path: import the handler
# (init: with PRELOAD_DEFAULT_MODEL, loading the default model too), then serve the first
# request of the model named by argv[2], timed apart; and whether scikit-learn was imported.
BUILT_COLD_START = r"""
import json, sys, time
started = time.perf_counter()
sys.path[:0] = json.loads(sys.argv[1])
import app
imported = time.perf_counter()
event = {"httpMethod": "POST", "path": "/predict", "resource": "/predict", "headers": {},
         "queryStringParameters": {"model": sys.argv[2]}, "body": '{"instances": [[0.5, 0.2]]}',
         "requestContext": {"requestId": "cold", "identity": {}}}
class Context:
    function_name = "cold"; memory_limit_in_mb = 1024; aws_request_id = "cold"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:cold"
answer = app.lambda_handler(event, Context())
assert answer["statusCode"] == 200, answer
print(json.dumps([imported - started, time.perf_counter() - imported, "sklearn" in sys.modules]))
"""
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


class SkopsServingCopy:
    """The validator for a model outside the compiled families: the forest's serving copy is
    the skops file it would make of it.

    The bench trained the model itself, so it saves it here; register stores it as any
    serving copy (the bench's registry only), for that path's cold start to be measured.
    """

    def __init__(self, validator: Any, model: Any) -> None:
        self.validator, self.model = validator, model

    def validate(self, *args: Any, **kwargs: Any) -> Any:
        validated = self.validator.validate(*args, **kwargs)
        return dataclasses.replace(
            validated, serving_copy=skops.io.dumps(self.model), serving_format=ServingFormat.SKOPS
        )


def built_cold_start_rows(quick: bool) -> list[Row]:
    """The built package, as Lambda runs it: its layer with bytecode, and with it removed; the
    forest served from its compiled form and from a skops copy; with the default model preloaded."""
    build = REPO_ROOT / ".aws-sam" / "build"
    if not (build / "RegistryLayer" / "python").is_dir():
        print("skipping the built package's cold start: no build (make package)", flush=True)
        return [Row("cold start of the built package: no build (make package)", None, "")]
    reps = 3 if quick else 7
    with tempfile.TemporaryDirectory() as scratch:
        runtime = Path(scratch) / "runtime"
        runtime.mkdir()
        for package in RUNTIME_PACKAGES:  # what the Lambda runtime provides
            spec = importlib.util.find_spec(package)
            assert spec is not None and spec.origin is not None
            origin = Path(spec.origin)
            source = origin.parent if origin.name == "__init__.py" else origin
            (runtime / source.name).symlink_to(source)
        without = Path(scratch) / "layer-without-bytecode"
        shutil.copytree(
            build / "RegistryLayer" / "python",
            without,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        registry_dir = Path(scratch) / "registry"
        registry = ModelRegistry(LocalStore(registry_dir))
        forest = train_moons()
        compiled = Registrar(registry, service.validator()).register("moons", joblib_bytes(forest))
        assert compiled.info.manifest.serving_format is ServingFormat.COMPILED
        copied = Registrar(registry, SkopsServingCopy(service.validator(), forest)).register(
            "moons-skops", joblib_bytes(forest)
        )
        assert copied.info.manifest.serving_format is ServingFormat.SKOPS
        env = {
            "REGISTRY_URI": str(registry_dir),
            "PATH": "/usr/bin:/bin",
            "PRELOAD_DEFAULT_MODEL": "false",
            "DEFAULT_MODEL": "moons",
        }

        def cold(layer: Path, model: str, **extra: str) -> tuple[float, float]:
            paths = json.dumps([str(build / "PredictFunction"), str(layer), str(runtime)])
            runs = []
            for _ in range(reps):
                done = subprocess.run(
                    [sys.executable, "-I", "-S", "-B", "-c", BUILT_COLD_START, paths, model],
                    env={**env, **extra},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                init, first, imported_sklearn = json.loads(done.stdout.splitlines()[-1])
                # The compiled form's whole point: serving it imports no scikit-learn.
                assert imported_sklearn is (model != "moons"), (model, imported_sklearn)
                runs.append((init, first))
            return (
                statistics.median(run[0] for run in runs),
                statistics.median(run[1] for run in runs),
            )

        layer = build / "RegistryLayer" / "python"
        with_import, with_first = cold(layer, "moons")
        without_import, without_first = cold(without, "moons")
        skops_import, skops_first = cold(layer, "moons-skops")
        preload_init, preload_first = cold(layer, "moons", PRELOAD_DEFAULT_MODEL="true")
    compiled_total, skops_total = with_import + with_first, skops_import + skops_first
    return [
        Row(
            "built package, bare python3.12: import predict handler, bytecode / none",
            with_import / without_import,
            f"{fmt(with_import)} vs {fmt(without_import)}",
        ),
        Row(
            "built package, bare python3.12: first request (compiled forest), bytecode / none",
            with_first / without_first,
            f"{fmt(with_first)} vs {fmt(without_first)}: read, load the arrays, predict",
        ),
        Row(
            "built package, bare python3.12: import + first request, compiled form / skops copy",
            compiled_total / skops_total,
            f"{fmt(compiled_total)} ({fmt(with_import)} + {fmt(with_first)}) vs "
            f"{fmt(skops_total)} ({fmt(skops_import)} + {fmt(skops_first)}: scikit-learn and "
            "skops imported, the forest loaded from its skops copy)",
        ),
        Row(
            "built package, bare python3.12: init with the default model preloaded / without",
            preload_init / with_import,
            f"{fmt(preload_init)} vs {fmt(with_import)}; then its first request "
            f"{fmt(preload_first)} (vs {fmt(with_first)})",
        ),
    ]
