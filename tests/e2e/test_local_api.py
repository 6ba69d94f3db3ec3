"""End to end over HTTP: scripts/local_api.py in its own process, as `make run` starts it."""

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import joblib
import numpy
import pytest

from registry.http.gateway import load_template, routes_from_template
from tests.emf import read_output
from tests.support.http import API_KEY, register, request, start_local_api
from tests.support.models import distinct_model_bytes

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_register_then_classify_over_http_matches_the_models_predict(
    each_store_api_url: str, moons_bytes: bytes, moons_model: Any
) -> None:
    status, manifest = register(each_store_api_url, moons_bytes)
    assert (status, manifest["version"]) == (201, 1)

    status, answer = request(
        f"{each_store_api_url}/classify?version=1",
        body=b'{"data1":"0.5","data2":"0.2"}',
        headers={"x-api-key": API_KEY},
    )

    expected = str(moons_model.predict(numpy.array([[0.5, 0.2]]))[0])
    assert (status, answer) == (200, {"prediction": expected, "model": "moons", "version": 1})


def test_classify_needs_the_api_key_when_the_server_was_given_one(
    api_url: str, moons_bytes: bytes
) -> None:
    register(api_url, moons_bytes)
    status, answer = request(f"{api_url}/classify", body={"data1": 0.5, "data2": 0.2})
    assert (status, answer["code"]) == (403, "forbidden")


def test_concurrent_classify_requests_all_get_the_right_answer(
    api_url: str, moons_bytes: bytes, moons_model: Any
) -> None:
    register(api_url, moons_bytes)
    rng = numpy.random.default_rng(0)
    batches = [rng.normal(size=(5, 2)).round(3).tolist() for _ in range(24)]

    def classify(rows: list[list[float]]) -> tuple[int, Any]:
        return request(
            f"{api_url}/classify?model=moons",
            body={"instances": rows},
            headers={"x-api-key": API_KEY},
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(classify, batches))

    for rows, (status, answer) in zip(batches, answers, strict=True):
        assert status == 200
        assert answer["predictions"] == moons_model.predict(numpy.array(rows)).tolist()


def test_errors_and_unknown_routes_are_json_with_a_code(api_url: str) -> None:
    assert request(f"{api_url}/nothing", method="GET")[1]["code"] == "route_not_found"
    status, answer = request(
        f"{api_url}/classify?model=nobody",
        body={"data1": 1, "data2": 2},
        headers={"x-api-key": API_KEY},
    )
    assert (status, answer["code"]) == (404, "model_not_found")
    status, answer = request(f"{api_url}/models", body=b"{not json")
    assert (status, answer["code"]) == (400, "malformed_json")


def test_the_openapi_document_covers_every_route_in_the_template(api_url: str) -> None:
    status, document = request(f"{api_url}/openapi.json", method="GET")
    assert status == 200
    assert document["openapi"].startswith("3.")
    template_paths = {route.path for route in routes_from_template(load_template())}
    assert set(document["paths"]) == template_paths
    assert "post" in document["paths"]["/classify"]
    assert "PredictRequest" in document["components"]["schemas"]


def test_make_runs_example_model_is_registered_once_and_served(tmp_path: Path) -> None:
    env = {**os.environ, "REGISTRY_URI": str(tmp_path / "registry"), "PYTHONUNBUFFERED": "1"}
    train = [sys.executable, str(REPO_ROOT / "scripts" / "train_moons.py"), "--register-if-empty"]
    first = subprocess.run(train, env=env, capture_output=True, text=True, check=True)
    second = subprocess.run(train, env=env, capture_output=True, text=True, check=True)
    assert "registered 'moons' version 1" in first.stdout
    assert "already has versions [1]" in second.stdout

    process, url = start_local_api(env)
    try:
        status, answer = request(f"{url}/classify?version=1", body=b'{"data1":"0.5","data2":"0.2"}')
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert (status, answer["model"], answer["version"]) == (200, "moons", 1)


def test_concurrent_classify_while_registering_and_evicting_serves_the_right_models(
    each_store_env: dict[str, str],
) -> None:
    models = {seed: distinct_model_bytes(seed) for seed in range(8)}
    # Room for about two models: every few requests evict a loaded version.
    env = {**each_store_env, "CACHE_MAX_BYTES": str(2 * max(map(len, models.values())) + 100)}
    process, url = start_local_api(env, "--api-key", API_KEY)
    try:
        answers, later = run_concurrent_traffic(url, models)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert sorted(version for version in later) == [5, 6, 7, 8]
    estimators = {seed + 1: joblib.load(io.BytesIO(data)) for seed, data in models.items()}
    for status, answer, rows, version in answers:
        assert status == 200, answer
        assert answer["version"] == version
        assert answer["predictions"] == estimators[version].predict(numpy.array(rows)).tolist()


def run_concurrent_traffic(
    url: str, models: dict[int, bytes]
) -> tuple[list[tuple[int, Any, list[list[float]], int]], list[int]]:
    """60 classify requests over versions 1-4 on 8 threads while versions 5-8 register."""
    for seed in range(4):
        assert register(url, models[seed])[1]["version"] == seed + 1
    rng = numpy.random.default_rng(3)
    jobs = [(int(rng.integers(1, 5)), rng.normal(size=(3, 2)).round(3).tolist()) for _ in range(60)]

    def classify(job: tuple[int, list[list[float]]]) -> tuple[int, Any, list[list[float]], int]:
        version, rows = job
        status, answer = request(
            f"{url}/classify?model=moons&version={version}",
            body={"instances": rows},
            headers={"x-api-key": API_KEY},
        )
        return status, answer, rows, version

    with ThreadPoolExecutor(max_workers=8) as pool:
        later = [pool.submit(register, url, models[seed]) for seed in range(4, 8)]
        answers = list(pool.map(classify, jobs))
    return answers, [future.result()[1]["version"] for future in later]


def test_a_method_a_route_does_not_serve_is_a_405_naming_the_allowed_ones(
    module_api_url: str,
) -> None:
    for method in ("GET", "TRACE", "QUERY", "OPTIONS"):
        call = urllib.request.Request(f"{module_api_url}/classify", method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(call, timeout=30)
        answer = json.loads(refused.value.read())
        assert (refused.value.code, answer["code"]) == (405, "method_not_allowed"), method
        assert refused.value.headers["Allow"] == "POST"
        assert f"{method} /classify is not served: use POST" in answer["message"]
    status, answer = request(f"{module_api_url}/models/moons", method="PUT")
    assert (status, answer["code"]) == (405, "method_not_allowed")
    status, answer = request(f"{module_api_url}/nothing", method="GET")
    assert (status, answer["code"]) == (404, "route_not_found")
    assert "/openapi.json" in answer["message"]


def test_a_port_in_use_is_one_line_that_says_what_to_do(module_api_url: str) -> None:
    port = module_api_url.rpartition(":")[2]

    taken = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "local_api.py"), "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert taken.returncode == 1
    assert taken.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is in use (is `make run` already running?): stop "
        f"that server, or pick another port: make run PORT={int(port) + 1}"
    ]


def test_a_body_over_the_payload_limit_is_a_413(api_url: str) -> None:
    status, answer = request(f"{api_url}/models", body=b"x" * (6 * 1024 * 1024 + 1))
    assert (status, answer["code"]) == (413, "payload_too_large")


def raw_exchange(url: str, head: str) -> str:
    """Send a request head (and no body) on a socket; the status line and headers answered."""
    host, _, port = url.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head.encode())
        return connection.recv(65536).decode(errors="replace")


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    api_url: str,
) -> None:
    upload = "/_uploads/uploads/moons/" + "a" * 32 + ".joblib"
    for method, path in (("POST", "/models"), ("POST", "/classify"), ("PUT", upload)):
        # 30 GB announced, nothing sent: answered at once, nothing allocated for it.
        answer = raw_exchange(
            api_url, f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 30000000000\r\n\r\n"
        )
        assert answer.startswith("HTTP/1.0 413") or answer.startswith("HTTP/1.1 413"), answer
        assert "Connection: close" in answer
    status, answer = request(f"{api_url}/models", method="GET")
    assert status == 200  # the server is still serving
    status, answer = request(f"{api_url}/models", body=b"x" * (6 * 1024 * 1024 + 1))
    assert "upload" in answer["message"] and "model-registry register" in answer["message"]


def test_the_server_prints_the_log_line_and_metrics_cloudwatch_would_get(
    tmp_path: Path, moons_bytes: bytes
) -> None:
    printed: list[str] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "REGISTRY_URI": str(tmp_path / "registry")}
    process, url = start_local_api(env, printed=printed)
    try:
        assert register(url, moons_bytes)[0] == 201
        call = urllib.request.Request(
            f"{url}/classify?version=1", data=b'{"data1":0.5,"data2":0.2}', method="POST"
        )
        with urllib.request.urlopen(call, timeout=30) as response:
            request_id = response.headers["x-amzn-RequestId"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(request_id in line for line in printed) < 2:
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=10)

    output = read_output("".join(line for line in printed if line.startswith("{")))
    (line,) = [line for line in output.requests if line["correlation_id"] == request_id]
    assert (line["service"], line["route"], line["status"], line["cache"]) == (
        "predict",
        "/classify",
        200,
        "miss",
    )
    (document,) = [doc for doc in output.documents if doc["correlation_id"] == request_id]
    assert {"Requests", "Latency", "CacheMisses"} <= set(document)
    assert len(output.requests) == 2  # the registration's line, then the classify's


def test_the_local_servers_own_writes_reach_its_predict_at_once(module_api_url: str) -> None:
    url = module_api_url
    key = {"x-api-key": API_KEY}
    body = {"instances": [[0.5, 0.2]]}
    assert register(url, distinct_model_bytes(31), name="fresh")[0] == 201
    assert request(f"{url}/predict?model=fresh", body=body, headers=key)[1]["version"] == 1

    assert register(url, distinct_model_bytes(32), name="fresh")[0] == 201
    assert request(f"{url}/predict?model=fresh", body=body, headers=key)[1]["version"] == 2
    alias = {"version": 1}
    assert request(f"{url}/models/fresh/aliases/default", "PUT", alias)[0] == 200
    assert request(f"{url}/predict?model=fresh", body=body, headers=key)[1]["version"] == 1
    assert request(f"{url}/models/fresh/aliases/default", "DELETE")[0] == 200
    assert request(f"{url}/models/fresh/versions/2", "DELETE")[0] == 200
    assert request(f"{url}/predict?model=fresh", body=body, headers=key)[1]["version"] == 1
    status, answer = request(f"{url}/predict?model=fresh&version=2", body=body, headers=key)
    assert (status, answer["code"]) == (410, "version_archived")
