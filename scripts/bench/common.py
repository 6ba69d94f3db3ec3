"""What every family of measurements shares: the report's rows and goals, timing, ports."""

import contextlib
import http.client
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.observability import logger

REPO_ROOT = Path(__file__).resolve().parents[2]

BUCKET = "bench-registry"
PREDICT_PATHS = ("/predict", "/classify", "/invocations")
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
# The first key a row's name starts with holds it to its goal (the more specific first).
GOALS = {
    "warm single row / raw predict (blog's model)": ("<=", 0.8),
    # capture adds one line on standard output: within noise of not capturing
    "warm single row, capture 100% / 0%": ("<=", 1.1),
    "warm single row / raw predict (300 trees)": ("<=", 0.1),
    "warm single row / raw predict": ("<=", 1.3),
    "blog request / warm single row": (">=", 20.0),
    "1,000 rows / raw predict (blog's model)": ("<=", 1.5),
    "1,000 rows / raw predict": ("<=", 2.0),
    "first request of a version / blog request": ("<=", 1.2),
    "local server / mlflow models serve": ("<=", 1.0),
    "classify --input 100,000 rows, DataFrame pipeline / in-process predict": ("<=", 3.0),
    "batch job, one core": ("<=", 1.2),
    "batch job, ": (">=", 1.0),
    "built package, bare python3.12: import predict handler, bytecode / none": ("<=", 0.45),
    "built package, bare python3.12: import + first request, compiled form / skops copy": (
        "<=",
        0.25,
    ),
}


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
