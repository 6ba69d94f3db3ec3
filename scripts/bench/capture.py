"""What capturing a prediction costs a warm request, as deployed: the record is one more line
on standard output (CAPTURE_TO=log), which the quiet() of the benchmark sends to /dev/null as
Lambda sends it to its log group."""

import json
import os

from bench.common import Row, fmt, median_seconds
from registry.http import service


class CaptureRows:
    quick: bool

    def capture_rows(self) -> list[Row]:
        """Warm single-row latency of the blog's model with capture at 100% and at 0%,
        measured in alternating rounds (the same answers either way)."""
        single = {"data1": "0.5", "data2": "0.2"}
        query = {"model": "moons"}
        medians: dict[str, list[float]] = {"0": [], "100": []}
        answers = set()
        saved = {name: os.environ.get(name) for name in ("CAPTURE_TO", "CAPTURE_SAMPLE_PERCENT")}
        try:
            for _ in range(3 if self.quick else 10):
                for percent in medians:
                    os.environ.update(CAPTURE_TO="log", CAPTURE_SAMPLE_PERCENT=percent)
                    service.capturer.cache_clear()
                    service.settings.cache_clear()
                    call = self.handler_call("POST", "/classify", single, query)
                    answers.add(json.loads(call()["body"])["prediction"])
                    medians[percent].append(median_seconds(call, self.reps(500)))
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            service.capturer.cache_clear()
            service.settings.cache_clear()
        assert len(answers) == 1, answers  # capture never changes an answer
        captured, plain = min(medians["100"]), min(medians["0"])
        return [
            Row(
                "warm single row, capture 100% / 0% (blog's model)",
                captured / plain,
                f"{fmt(captured)} vs {fmt(plain)}",
            )
        ]
