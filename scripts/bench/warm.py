"""Warm requests against raw predict and the blog's design; validation; memory over versions."""

import gc
import json
import os
from pathlib import Path
from typing import Any

import numpy
from sklearn.datasets import make_moons
from sklearn.ensemble import RandomForestClassifier

from bench.common import (
    LAMBDA_PAYLOAD_LIMIT,
    Row,
    fmt,
    median_seconds,
)
from registry.http import service
from registry.http.schemas import PredictRequest


class WarmRows:
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
