"""The local server over a kept-alive connection, and against `mlflow models serve`."""

import base64
import contextlib
import functools
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy
import sklearn
from train_moons import joblib_bytes, train_moons

from bench.common import (
    REPO_ROOT,
    KeptAlive,
    Row,
    fmt,
    free_port,
    median_seconds,
    medians_interleaved,
)

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


class LocalServerRows:
    @contextlib.contextmanager
    def local_api_server(
        self, extra_env: dict[str, str] | None = None
    ) -> Iterator[tuple[str, int]]:
        """scripts/local_api.py on a free port of 127.0.0.1 over an empty directory store.

        What it prints (a log line a request) goes to a file, as MLflow's server's does: a
        pipe would need a reader thread in this process, competing with the timed client."""
        with tempfile.TemporaryDirectory(prefix="bench-local-") as workdir:
            env = {**os.environ, "REGISTRY_URI": f"{workdir}/registry", "PYTHONUNBUFFERED": "1"}
            env.update(extra_env or {})
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
