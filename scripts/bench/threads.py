"""Native thread pools held to the function's CPU share, for models that use them."""

import contextlib
import functools
import json
import os
from collections.abc import Iterator

from sklearn.datasets import load_wine
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.neighbors import KNeighborsClassifier

from bench.common import (
    Row,
    fmt,
    median_seconds,
    median_seconds_in_fresh_threads,
)
from registry.http import service
from registry.serving.native_threads import NativeThreads, cpu_share_threads


class ThreadRows:
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
