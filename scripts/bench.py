"""Benchmark the prediction path against the blog's design and against raw scikit-learn.

One run, against moto's ThreadedMotoServer on 127.0.0.1 as the S3 endpoint,
invoking the real handlers in-process with API Gateway REST events. Every
figure is a median over many repetitions, and what is reported are ratios
measured side by side (absolute times on a shared machine are noise).

    python scripts/bench.py          # full run: writes docs/benchmarks.md and docs/benchmarks.png
    python scripts/bench.py --quick  # few repetitions, to a temporary folder (make test runs it)

The local server is also measured against `mlflow models serve` on the same model, when
the MLflow venv that `make bench` installs (.venv-mlflow) is there; without it those rows
are reported as skipped, so neither `make test` nor this script's own venv needs MLflow.
"""

import argparse
import base64
import contextlib
import dataclasses
import functools
import gc
import http.client
import importlib.util
import io
import json
import logging
import os
import pickle
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "scripts")]

import boto3  # noqa: E402
import joblib  # noqa: E402
import numpy  # noqa: E402
import sklearn  # noqa: E402
import skops.io  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402
from sklearn.datasets import load_wine, make_moons  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from train_moons import joblib_bytes, train_moons  # noqa: E402

from registry.http import service  # noqa: E402
from registry.http.gateway import (  # noqa: E402
    LocalLambdaContext,
    build_event,
    load_function_module,
    load_template,
    routes_from_template,
)
from registry.http.schemas import PredictRequest  # noqa: E402
from registry.manifest import ServingFormat  # noqa: E402
from registry.observability import logger  # noqa: E402
from registry.registering.registration import Registrar  # noqa: E402
from registry.registry import ModelRegistry  # noqa: E402
from registry.serving.native_threads import NativeThreads, cpu_share_threads  # noqa: E402
from registry.store import LocalStore  # noqa: E402

BUCKET = "bench-registry"
PREDICT_PATHS = ("/predict", "/classify", "/invocations")
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
# The first key a row's name starts with holds it to its goal (the more specific first).
GOALS = {
    "warm single row / raw predict (blog's model)": ("<=", 0.8),
    "warm single row / raw predict (300 trees)": ("<=", 0.1),
    "warm single row / raw predict": ("<=", 1.3),
    "blog request / warm single row": (">=", 20.0),
    "1,000 rows / raw predict (blog's model)": ("<=", 1.5),
    "1,000 rows / raw predict": ("<=", 2.0),
    "first request of a version / blog request": ("<=", 1.2),
    "local server / mlflow models serve": ("<=", 1.0),
    "built package, bare python3.12: import predict handler, bytecode / none": ("<=", 0.45),
    "built package, bare python3.12: import + first request, compiled form / skops copy": (
        "<=",
        0.25,
    ),
}
# Run by the MLflow venv's python: the joblib bytes on stdin become an MLflow model directory,
# in MLflow's default format (skops), trusting the one type a forest needs. pip_requirements
# is given so that MLflow does not infer it (serving with --env-manager local never reads
# it); the versions printed are checked against this process's.
MLFLOW_SAVE = """
import io, json, sys
import joblib, mlflow, mlflow.sklearn, numpy, sklearn
model = joblib.load(io.BytesIO(sys.stdin.buffer.read()))
mlflow.sklearn.save_model(
    model,
    sys.argv[1],
    skops_trusted_types=["sklearn.tree._tree.Tree"],
    pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
)
print(json.dumps({"mlflow": mlflow.__version__, "scikit-learn": sklearn.__version__,
                  "numpy": numpy.__version__, "joblib": joblib.__version__}))
"""


@dataclass
class Row:
    name: str
    ratio: float | None  # None: not measured (skipped), the detail says why
    detail: str

    def goal(self) -> str:
        """'<= 1.3 met', '>= 20.0 MISSED', or '' for a row without a goal."""
        if (goal := self.target()) is None:
            return ""
        op, target = goal
        if self.ratio is None:
            return f"{op} {target} not measured"
        met = self.ratio <= target if op == "<=" else self.ratio >= target
        return f"{op} {target} {'met' if met else 'MISSED'}"

    def target(self) -> tuple[str, float] | None:
        """The goal this row is held to: ('<=', 1.3), or None."""
        for prefix, goal in GOALS.items():
            if self.name.startswith(prefix):
                return goal
        return None

    def ratio_text(self) -> str:
        return "skipped" if self.ratio is None else f"{self.ratio:.2f}"


def median_seconds(call: Callable[[], Any], repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def medians_interleaved(
    calls: dict[str, Callable[[], Any]], repeat: int, warmup: int = 2
) -> dict[str, float]:
    """Each call timed once a round, in turn (the order reversed every other round), so
    that what the machine does meanwhile falls on all of them alike."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    for _ in range(repeat):
        for name in order:
            started = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - started)
        order.reverse()
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def median_seconds_in_fresh_threads(call: Callable[[], Any], repeat: int, warmup: int = 2) -> float:
    """Each call made from a thread of its own, as scripts/local_api.py's threading server
    makes one per request; timed inside that thread, so starting and joining it is left out."""
    times: list[float] = []

    def timed() -> None:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)

    for _ in range(warmup + repeat):
        thread = threading.Thread(target=timed)
        thread.start()
        thread.join()
    return statistics.median(times[warmup:])


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 1 else f"{seconds:.2f} s"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The handlers still format and write their log lines and metrics, to /dev/null."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        previous = logger.registered_handler.setStream(devnull)
        try:
            yield
        finally:
            logger.registered_handler.setStream(previous or sys.stdout)


class KeptAlive:
    """One HTTP/1.1 connection kept alive across requests, as requests.Session keeps it."""

    def __init__(self, host: str, port: int) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=60)

    def post(self, path: str, body: bytes) -> bytes:
        headers = {"Content-Type": "application/json"}
        self.connection.request("POST", path, body, headers)
        response = self.connection.getresponse()
        data = response.read()
        assert response.status in (200, 201), data[:500]
        assert not response.will_close, "the server closed the kept-alive connection"
        return data

    def close(self) -> None:
        self.connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Bench:
    def __init__(self, endpoint: str, quick: bool, mlflow_venv: Path | None = None) -> None:
        self.endpoint = endpoint
        self.quick = quick
        self.mlflow_venv = mlflow_venv
        self.mlflow_versions: dict[str, str] = {}
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        self.routes = {
            (route.method, route.path): route for route in routes_from_template(load_template())
        }
        self.register_app = load_function_module(REPO_ROOT / "functions" / "register")
        self.predict_app = load_function_module(REPO_ROOT / "functions" / "predict")
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-"))

    def reps(self, full: int) -> int:
        return max(3, full // 100) if self.quick else full

    def batch_sizes(self) -> tuple[int, ...]:
        return (1_000, 2_000) if self.quick else (1_000, 10_000, self.largest_batch())

    def handler_call(
        self, method: str, path: str, body: Any, query: dict[str, str] | None = None
    ) -> Callable[[], dict[str, Any]]:
        """One API Gateway event, built once; calling the result is what Lambda times."""
        route = self.routes[(method, path)]
        data = json.dumps(body).encode()
        queries = {key: [value] for key, value in (query or {}).items()}
        event = build_event(route, method, path, {}, queries, {}, data)
        app = self.predict_app if path in PREDICT_PATHS else self.register_app
        context = LocalLambdaContext(route.function)
        return lambda: app.lambda_handler(event, context)

    def invoke(self, method: str, path: str, body: Any, query: dict[str, str] | None = None) -> Any:
        response = self.handler_call(method, path, body, query)()
        assert response["statusCode"] in (200, 201), response["body"][:500]
        return json.loads(response["body"])

    def register(self, name: str, model: Any) -> int:
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        body = {"name": name, "artifact": base64.b64encode(buffer.getvalue()).decode()}
        return int(self.invoke("POST", "/models", body)["version"])

    def blog_request(self, key: str, row: tuple[float, float]) -> Callable[[], Any]:
        """The blog's handler body: download, unpickle and predict on every request."""
        temp_file_path = str(self.tmp / key.replace("/", "_"))

        def request() -> Any:
            self.s3.download_file(BUCKET, key, temp_file_path)
            with open(temp_file_path, "rb") as pickled:
                model = pickle.load(pickled)
            return model.predict([[float(row[0]), float(row[1])]])[0]

        return request

    def upload_blog_model(self, model: Any, key: str) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=pickle.dumps(model))

    def model_rows(self, label: str, name: str, model: Any) -> list[Row]:
        """Rows 1 to 4 for one model."""
        version = self.register(name, model)
        query = {"model": name, "version": str(version)}
        single = {"data1": "0.5", "data2": "0.2"}
        one = numpy.array([[0.5, 0.2]])
        rows: list[Row] = []

        classify = self.handler_call("POST", "/classify", single, query)
        assert json.loads(classify()["body"])["prediction"] == str(model.predict(one)[0])
        warm = median_seconds(classify, self.reps(2000))
        raw = median_seconds(lambda: model.predict(one), self.reps(2000))
        rows.append(
            Row(
                f"warm single row / raw predict ({label})", warm / raw, f"{fmt(warm)} vs {fmt(raw)}"
            )
        )

        blog_key = f"blog/{name}.p"
        self.upload_blog_model(model, blog_key)
        blog = median_seconds(self.blog_request(blog_key, (0.5, 0.2)), self.reps(200))
        rows.append(
            Row(
                f"blog request / warm single row ({label})",
                blog / warm,
                f"{fmt(blog)} vs {fmt(warm)}",
            )
        )

        rng = numpy.random.default_rng(0)
        for count in self.batch_sizes():
            batch = rng.normal(size=(count, 2)).round(6)
            body = {"instances": batch.tolist()}
            answer = self.invoke("POST", "/classify", body, query)
            assert answer["predictions"] == model.predict(batch).tolist()
            reps = self.reps(200 if count <= 1_000 else 10)
            ours = median_seconds(self.handler_call("POST", "/classify", body, query), reps)
            theirs = median_seconds(lambda b=batch: model.predict(b), reps)
            size = len(json.dumps(body))
            rows.append(
                Row(
                    f"{count:,} rows / raw predict ({label})",
                    ours / theirs,
                    f"{fmt(ours)} vs {fmt(theirs)}, body {size:,} bytes",
                )
            )

        def first_request() -> Any:
            service.predictor().cache.clear()
            return classify()

        first = median_seconds(first_request, self.reps(100))
        rows.append(
            Row(
                f"first request of a version / blog request ({label})",
                first / blog,
                f"{fmt(first)} vs {fmt(blog)}",
            )
        )
        return rows

    def validation_row(self) -> Row:
        """What request validation costs per row: Pydantic (strict floats) against numpy."""
        rows = numpy.random.default_rng(1).normal(size=(1_000, 2)).round(6).tolist()
        body = {"instances": rows}
        reps = self.reps(300)
        pydantic = median_seconds(lambda: PredictRequest.model_validate(body), reps)
        conversion = median_seconds(lambda: numpy.asarray(rows, dtype=numpy.float64), reps)
        return Row(
            "Pydantic validation of 1,000 rows / numpy conversion of them",
            pydantic / conversion,
            f"{fmt(pydantic)} vs {fmt(conversion)}: {pydantic / 1_000 * 1e9:.0f} ns a row",
        )

    @staticmethod
    def largest_batch() -> int:
        """The most rows of two 6-decimal features whose JSON fits Lambda's 6 MB payload."""
        row_bytes = len(json.dumps([[-1.234567, -1.234567]])) - 1
        return (LAMBDA_PAYLOAD_LIMIT - len('{"instances": []}')) // (row_bytes + 1)

    def memory_row(self) -> Row:
        """Cycle through 50 versions with a cache that holds 5: resident memory stays bounded."""
        versions, held = (12, 3) if self.quick else (50, 5)
        features, labels = make_moons(n_samples=300, noise=0.25, random_state=3)
        for seed in range(versions):
            model = RandomForestClassifier(n_estimators=40, random_state=seed)
            self.register("memory", model.fit(features, labels))
        registry = service.model_registry()
        largest = max(registry.get_manifest("memory", v).size_bytes for v in range(1, versions + 1))
        cache = service.predictor().cache
        cache.clear()
        cache.max_bytes = int(largest * (held + 0.5))
        single = {"data1": "0.5", "data2": "0.2"}
        rounds = 1 if self.quick else 3

        def classify(version: int) -> None:
            self.invoke("POST", "/classify", single, {"model": "memory", "version": str(version)})

        def rss() -> int:
            gc.collect()
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE")

        for version in range(1, held + 1):
            classify(version)
        after_held = peak = rss()
        for _ in range(rounds):
            for version in range(1, versions + 1):
                classify(version)
                peak = max(peak, rss())
        return Row(
            f"memory: peak RSS cycling {versions} versions / RSS with {held} loaded",
            peak / after_held,
            f"{len(cache)} cached, {cache.total_bytes:,} of {cache.max_bytes:,} bytes; RSS "
            f"{after_held / 1e6:.0f} MB, peak {peak / 1e6:.0f} MB over {rounds * versions} loads",
        )

    @contextlib.contextmanager
    def local_api_server(self) -> Iterator[tuple[str, int]]:
        """scripts/local_api.py on a free port of 127.0.0.1 over an empty directory store.

        What it prints (a log line a request) goes to a file, as MLflow's server's does: a
        pipe would need a reader thread in this process, competing with the timed client."""
        with tempfile.TemporaryDirectory(prefix="bench-local-") as workdir:
            env = {**os.environ, "REGISTRY_URI": f"{workdir}/registry", "PYTHONUNBUFFERED": "1"}
            log = Path(workdir) / "serve.log"
            with log.open("wb") as log_file:
                server = subprocess.Popen(
                    [sys.executable, str(REPO_ROOT / "scripts" / "local_api.py"), "--port", "0"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            try:
                deadline = time.monotonic() + 60
                serving: list[str] = []
                while not serving:
                    assert server.poll() is None, log.read_text()[-3000:]
                    assert time.monotonic() < deadline, log.read_text()[-3000:]
                    time.sleep(0.05)
                    lines = log.read_text().split("\n")[:-1]  # whole lines only
                    serving = [line for line in lines if line.startswith("Serving on ")]
                url = urllib.parse.urlsplit(serving[0].split()[2])
                assert url.hostname is not None and url.port is not None
                yield url.hostname, url.port
            finally:
                server.terminate()
                server.wait(timeout=10)

    def mlflow_skip_reason(self) -> str | None:
        if self.mlflow_venv is None:
            return "no MLflow venv given (--mlflow-venv)"
        if not (self.mlflow_venv / "bin" / "mlflow").exists():
            return f"no MLflow venv at {self.mlflow_venv} (make bench installs it)"
        return None

    @contextlib.contextmanager
    def mlflow_server(self, model: Any) -> Iterator[tuple[str, int]]:
        """`mlflow models serve` of the same model: its joblib bytes saved by
        mlflow.sklearn.save_model in the MLflow venv, served there by uvicorn with one worker
        (MLflow's default) on 127.0.0.1, in this environment (--env-manager local)."""
        assert self.mlflow_venv is not None
        venv_bin = (self.mlflow_venv / "bin").absolute()
        env = {
            **os.environ,
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",  # uvicorn's
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
        }
        for variable in ("VIRTUAL_ENV", "PYTHONPATH", "MLFLOW_MODELS_WORKERS"):
            env.pop(variable, None)
        with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as workdir:
            model_dir = Path(workdir) / "model"
            saved = subprocess.run(
                [str(venv_bin / "python"), "-c", MLFLOW_SAVE, str(model_dir)],
                input=joblib_bytes(model),
                capture_output=True,
                env=env,
                cwd=workdir,
                check=False,
            )
            assert saved.returncode == 0, saved.stderr.decode()[-3000:]
            self.mlflow_versions = json.loads(saved.stdout.decode().splitlines()[-1])
            ours = {"scikit-learn": sklearn.__version__, "numpy": numpy.__version__}
            theirs = {name: self.mlflow_versions[name] for name in ours}
            assert theirs == ours, f"the MLflow venv has {theirs}, this one {ours}"

            port = free_port()
            command = [str(venv_bin / "mlflow"), "models", "serve", "-m", str(model_dir)]
            command += ["-h", "127.0.0.1", "-p", str(port), "-w", "1", "--env-manager", "local"]
            log = Path(workdir) / "serve.log"
            with log.open("wb") as log_file:
                server = subprocess.Popen(
                    command,
                    env=env,
                    cwd=workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: the CLI and the uvicorn it starts
                )
            try:
                deadline = time.monotonic() + 120
                while True:
                    assert server.poll() is None, log.read_text()[-3000:]
                    assert time.monotonic() < deadline, log.read_text()[-3000:]
                    try:
                        ping = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                        ping.request("GET", "/ping")
                        if ping.getresponse().status == 200:
                            ping.close()
                            break
                    except OSError:
                        pass
                    time.sleep(0.2)
                yield "127.0.0.1", port
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait(timeout=10)

    def local_server_rows(self) -> list[Row]:
        """scripts/local_api.py over one kept-alive HTTP connection, as requests.Session and
        most SDKs keep it, against the warm handler called in-process: what HTTP adds. Then,
        when the MLflow venv is there, against `mlflow models serve` of the same model over a
        kept-alive connection of its own: the same body to the same path, timed in turn."""
        model = train_moons()
        version = self.register("moons-http", model)
        skip_reason = self.mlflow_skip_reason()
        rows: list[Row] = []
        mlflow_rows: list[Row] = []
        with contextlib.ExitStack() as stack:
            local = KeptAlive(*stack.enter_context(self.local_api_server()))
            stack.callback(local.close)
            artifact = base64.b64encode(joblib_bytes(model)).decode()
            registered = local.post(
                "/models", json.dumps({"name": "moons", "artifact": artifact}).encode()
            )
            assert json.loads(registered)["version"] == 1
            mlflow: KeptAlive | None = None
            if skip_reason is None:
                mlflow = KeptAlive(*stack.enter_context(self.mlflow_server(model)))
                stack.callback(mlflow.close)
            rng = numpy.random.default_rng(0)
            for count in (1, 1000):
                batch = rng.normal(size=(count, 2))
                body = {"instances": batch.tolist()}
                data = json.dumps(body).encode()
                expected = model.predict(batch).tolist()
                what = "single row" if count == 1 else f"{count:,} rows"
                query = {"model": "moons-http", "version": str(version)}
                handler = self.handler_call("POST", "/predict", body, query)
                calls = {"local": functools.partial(local.post, "/invocations?model=moons", data)}
                assert json.loads(calls["local"]())["predictions"] == expected
                if mlflow is not None:
                    calls["mlflow"] = functools.partial(mlflow.post, "/invocations", data)
                    assert json.loads(calls["mlflow"]())["predictions"] == expected
                over_http = medians_interleaved(calls, self.reps(500))
                in_process = median_seconds(handler, self.reps(500))
                rows.append(
                    Row(
                        f"local server, kept-alive connection, {what} / warm handler",
                        over_http["local"] / in_process,
                        f"{fmt(over_http['local'])} vs {fmt(in_process)}",
                    )
                )
                mlflow_rows.append(
                    Row(
                        f"local server / mlflow models serve, {what}",
                        over_http["local"] / over_http["mlflow"],
                        f"{fmt(over_http['local'])} vs {fmt(over_http['mlflow'])}, "
                        f"POST /invocations, body {len(data):,} bytes, each over one "
                        "kept-alive connection",
                    )
                    if mlflow is not None
                    else Row(
                        f"local server / mlflow models serve, {what}",
                        None,
                        f"skipped: {skip_reason}",
                    )
                )
        return rows + mlflow_rows

    @contextlib.contextmanager
    def native_threads_condition(self, limited: bool) -> Iterator[None]:
        """The predictor rebuilt from the environment, with or without the native thread limit.

        Limited: NATIVE_THREADS and AWS_LAMBDA_FUNCTION_MEMORY_SIZE unset, so the default
        applies (1 thread outside Lambda; a 1,024 MB function's CPU share is 1 thread too).
        Not limited: the predictor the handler uses gets native_threads=None, which is what
        Predictor(..., native_threads=None) builds: no threadpoolctl call at all, as before
        the limit existed. The variables are restored and the predictor rebuilt afterwards,
        so later sections see the usual setup.
        """
        names = ("NATIVE_THREADS", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        saved = {name: os.environ.pop(name) for name in names if name in os.environ}
        service.reset()
        try:
            predictor = service.predictor()
            if limited:
                assert predictor.native_threads.limit == 1 == cpu_share_threads(1024)
            else:
                predictor.native_threads = NativeThreads(None)
            yield
        finally:
            for name in names:
                os.environ.pop(name, None)
            os.environ.update(saved)
            service.reset()

    def native_thread_rows(self) -> list[Row]:
        """Warm single-row latency with the native pools limited to one thread and without,
        on the main thread and from a fresh thread per request (OpenMP makes a team for each
        thread that calls it). HGB predicts through OpenMP; KNN (a k-d tree here) through
        neither pool, so it shows the limit's own cost."""
        features, labels = load_wine(return_X_y=True)
        models = {
            "HGB": HistGradientBoostingClassifier(max_iter=100, random_state=0),
            "KNN": KNeighborsClassifier(),
        }
        one = features[:1]
        body = {"instances": one.tolist()}
        conditions = {False: "before: no thread limit", True: "after: default limit, 1 thread"}
        rows: list[Row] = []
        for label, model in models.items():
            model.fit(features, labels)
            name = f"wine-{label.lower()}"
            query = {"model": name, "version": str(self.register(name, model))}
            expected = model.predict(one).tolist()
            warm: dict[tuple[bool, bool], float] = {}
            for limited, condition in conditions.items():
                with self.native_threads_condition(limited):
                    request = self.handler_call("POST", "/predict", body, query)
                    assert json.loads(request()["body"])["predictions"] == expected
                    on_main = median_seconds(request, self.reps(2000))
                    raw = median_seconds(functools.partial(model.predict, one), self.reps(2000))
                    fresh = median_seconds_in_fresh_threads(request, self.reps(1000))
                warm[limited, False], warm[limited, True] = on_main, fresh
                for in_fresh_thread, seconds in ((False, on_main), (True, fresh)):
                    where = " from a fresh thread" if in_fresh_thread else ""
                    gain = (
                        f"; no limit / limit: {warm[False, in_fresh_thread] / seconds:.2f}"
                        if limited
                        else ""
                    )
                    rows.append(
                        Row(
                            f"{label} warm single row{where} / raw predict ({condition})",
                            seconds / raw,
                            f"{fmt(seconds)} vs {fmt(raw)} on the main thread{gain}",
                        )
                    )
        return rows

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


def write_report(
    rows: list[Row], output_dir: Path, quick: bool, mlflow_versions: dict[str, str]
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output_dir.mkdir(parents=True, exist_ok=True)
    chart = output_dir / "benchmarks.png"
    figure, axis = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.2))
    measured = [row for row in rows if row.ratio is not None][::-1]
    axis.barh([row.name for row in measured], [row.ratio for row in measured], color="#4c78a8")
    # Each goal, marked on its row: a bar should end left of a '<=' mark, right of a '>='.
    goals = [(index, row.target()) for index, row in enumerate(measured) if row.target()]
    for op in ("<=", ">="):
        marks = [(index, goal[1]) for index, goal in goals if goal and goal[0] == op]
        if marks:
            axis.scatter(
                [target for _, target in marks],
                [index for index, _ in marks],
                marker="|",
                s=300,
                linewidths=2.5,
                color="#d62728" if op == "<=" else "#2ca02c",
                label=f"goal: at most ({op})" if op == "<=" else f"goal: at least ({op})",
                zorder=3,
            )
    if goals:
        axis.legend(loc="lower right", fontsize=8)
    axis.set_xscale("log")
    axis.axvline(1.0, color="grey", linewidth=0.8)
    axis.set_xlabel("ratio (log scale)")
    axis.set_title("model-registry benchmark ratios")
    axis.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    figure.savefig(chart, dpi=110)
    plt.close(figure)

    lines = [
        "# Benchmarks",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make bench` (`scripts/bench.py`"
        f"{' --quick' if quick else ''}): the real handlers invoked in-process with API Gateway"
        " REST events, S3 from moto's ThreadedMotoServer on 127.0.0.1. Each figure is a median;"
        " ratios are measured side by side, so they travel across machines better than times.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
        f"Python {platform.python_version()}, scikit-learn {sklearn.__version__}, "
        f"numpy {numpy.__version__}, joblib {joblib.__version__}.",
        "",
        "| measure | ratio | goal | medians |",
        "| --- | ---: | --- | --- |",
        *[f"| {row.name} | {row.ratio_text()} | {row.goal()} | {row.detail} |" for row in rows],
        "",
        "The blog request is the blog's handler body: `download_file` from S3 to /tmp, "
        "`pickle.load`, `predict`, on every request. The small model is the blog's "
        "RandomForestClassifier(n_estimators=5) on make_moons; the large one has 300 trees.",
        "",
        "HGB and KNN are HistGradientBoostingClassifier(max_iter=100) and KNeighborsClassifier()"
        " on load_wine, asked for one row through POST /predict. Before, the native thread pools"
        " were left at the machine's cores; after, threadpoolctl holds them to NATIVE_THREADS"
        " (0: the function's CPU share: 1 thread outside Lambda and in a 1,024 MB function),"
        " set once per calling thread. HGB predicts through OpenMP; KNN on 13 features picks a"
        " k-d tree, which uses neither pool, so its rows show what the limit itself costs."
        " 'From a fresh thread' makes each request from a new thread, as"
        " scripts/local_api.py's threading server does, timed inside that thread: OpenMP"
        " makes a team for each calling thread.",
        "",
        "The local server rows post to scripts/local_api.py (one process, its threading"
        " server, over a directory store) through one kept-alive HTTP/1.1 connection, timed"
        " from the request to the last byte of the answer. 'mlflow models serve' is"
        f" MLflow {mlflow_versions.get('mlflow', '(not installed)')} from the venv `make bench`"
        " installs (.venv-mlflow, with the same scikit-learn and numpy), serving the same"
        " model (its joblib bytes saved by mlflow.sklearn.save_model) with"
        " `--env-manager local` and one uvicorn worker, its default; the same"
        ' `{"instances": [...]}` body goes to POST /invocations of each, over a kept-alive'
        " connection of its own, the two timed in turn, and both answers are checked"
        " against the model's own predict.",
        "",
        "The 'built package' rows run what `make package` built, as Lambda does: a bare"
        " `python3.12 -I -S -B` (no site-packages, no bytecode written, as on the read-only"
        " /opt) with only the predict function, its layer and boto3 on the path, a new"
        " process per run, over a directory store. 'bytecode' is the layer as built, with"
        " the unchecked hash-based .pyc layer/bytecode.py compiled for the modules the"
        " handlers import; 'none' is the same layer with every __pycache__ removed, as the"
        " layer shipped before. 'Compiled form' serves the blog's forest as registered now:"
        " its numpy arrays read, bounds-checked and walked, with no scikit-learn imported (the"
        " run checks sys.modules); 'skops copy' serves the same forest from the skops copy the"
        " validator makes of a joblib model outside the compiled families: scikit-learn and"
        " skops imported, the forest loaded with trusted types. 'Preloaded' sets"
        " PRELOAD_DEFAULT_MODEL, so init loads the compiled"
        " forest and the first request finds it. The 'cold init' rows above run in the"
        " development venv, which has bytecode, so they do not show this.",
        "",
        "Why the compiled form is evaluated by our own code (registry/compiled.py), not by a"
        " library: treelite's GTIL and skl2onnx with onnxruntime were measured first"
        " (docs/tree-runtimes.md). Neither is exact with scikit-learn as it is: ONNX Runtime"
        " runs trees in float32 only (its float64 path does not load) and misroutes"
        " HistGradientBoosting at thresholds; treelite 4.8.1 is exact for the five families"
        " only with three fixes of ours around it (rows rounded to float32 for all but"
        " HistGradientBoosting, the baseline folded into the first trees' leaves, a float64"
        " softmax), loads its own binary format rather than plain arrays, imports scipy"
        " (216 ms of a cold start) and was slower than scikit-learn at 1,000 rows (41.8 ms"
        " vs 28.9 ms on one thread for 300 trees). Those three fixes are most of an"
        " evaluator, so registry/compiled.py does them over numpy arrays (.npz loaded with"
        " allow_pickle=False, every index bounds-checked), walks every tree at once (one"
        " numpy call per depth step for all rows and trees, the pairs that reached a leaf set"
        " aside every 6 steps), sums in scikit-learn's order (a cumulative sum or a loop over"
        " stages, never a pairwise sum), and imports nothing but numpy. The validator keeps"
        " a form only if it matched scikit-learn bit for bit on the registrant's example and"
        " about 2,500 generated rows.",
        "",
        "![benchmark ratios](benchmarks.png)",
        "",
    ]
    report = output_dir / "benchmarks.md"
    report.write_text("\n".join(lines))
    return report


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
            rows.append(bench.validation_row())
            rows.append(bench.memory_row())
            rows += bench.native_thread_rows()
            rows += bench.local_server_rows()
        rows += bench.cold_init_rows()
        rows += built_cold_start_rows(args.quick)
    finally:
        server.stop()

    width = max(len(row.name) for row in rows)
    for row in rows:
        print(f"{row.name.ljust(width)}  {row.ratio_text():>8}  {row.goal():14}  {row.detail}")
    report = write_report(rows, output_dir, args.quick, bench.mlflow_versions)
    print(f"wrote {report} and {report.with_suffix('.png').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
