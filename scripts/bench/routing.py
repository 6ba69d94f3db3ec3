"""What routing a request to an older runtime line adds: the local server's front predict
serving a version of its own line, against the same kind of model trained with scikit-learn
1.8 and predicted by the 1.8 line's process (.venv-lines/1.8, which make bench installs)."""

import base64
import contextlib
import functools
import json
import os
import subprocess
from typing import Any

import numpy
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from train_moons import joblib_bytes

from bench.common import REPO_ROOT, KeptAlive, Row, fmt, medians_interleaved

LINE = "1.8"
# Run by the line's interpreter: the same pipeline, fitted there; its joblib bytes.
TRAIN_IN_LINE = r"""
import base64, io, sys, joblib
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
features, target = load_wine(return_X_y=True)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, target)
buffer = io.BytesIO(); joblib.dump(model, buffer)
sys.stdout.write(base64.b64encode(buffer.getvalue()).decode())
"""
# Lambda's prices for arm-less x86 functions in us-east-1, as of this writing.
PRICE_PER_MILLION_REQUESTS = 0.20
PRICE_PER_GB_SECOND = 0.0000166667
FUNCTION_GB = 1.0  # the template's 1,024 MB


def line_python() -> str:
    return str(REPO_ROOT / ".venv-lines" / LINE / "bin" / "python")


class RoutingRows:
    routed_ms: dict[str, float]

    def routing_rows(self) -> list[Row]:
        """One kept-alive connection to the local server, front and routed requests timed in
        turn, for one row and for 1,000; both answers checked against the models' own."""
        names = ["single row", "1,000 rows"]
        if not os.path.exists(line_python()):
            reason = f"skipped: no {LINE} line at {line_python()} (make bench installs it)"
            return [Row(f"routed to line {LINE} / front, {what}", None, reason) for what in names]
        trained = subprocess.run(
            [line_python(), "-c", TRAIN_IN_LINE], capture_output=True, text=True, check=True
        )
        features, target = load_wine(return_X_y=True)
        front_model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        front_model.fit(features, target)
        rows: list[Row] = []
        self.routed_ms = {}
        extra = {"RUNTIME_LINES": f"{LINE}={line_python()}"}
        with contextlib.ExitStack() as stack:
            local = KeptAlive(*stack.enter_context(self.local_api_server(extra)))
            stack.callback(local.close)
            for name, artifact in (
                ("front", base64.b64encode(joblib_bytes(front_model)).decode()),
                ("routed", trained.stdout),
            ):
                answer = json.loads(local.post("/models", _body(name=name, artifact=artifact)))
                assert answer["version"] == 1, answer
            for what, count in zip(names, (1, 1000), strict=True):
                batch = numpy.resize(features, (count, features.shape[1]))
                data = _body(instances=batch.tolist())
                calls = {
                    name: functools.partial(local.post, f"/predict?model={name}", data)
                    for name in ("front", "routed")
                }
                routed = json.loads(calls["routed"]())
                assert routed["line"] == LINE
                assert numpy.array_equal(
                    json.loads(calls["front"]())["predictions"], front_model.predict(batch)
                )
                medians = medians_interleaved(calls, self.reps(300))
                added = medians["routed"] - medians["front"]
                self.routed_ms[what] = added * 1000
                rows.append(
                    Row(
                        f"routed to line {LINE} / front, {what}",
                        medians["routed"] / medians["front"],
                        f"{fmt(medians['routed'])} vs {fmt(medians['front'])}: {fmt(added)} "
                        "added (one framed hop to the line's process, its own cache warm)",
                    )
                )
        return rows

    def routing_cost_text(self) -> str:
        """The cost per million routed requests, on paper, from Lambda's prices."""
        if not getattr(self, "routed_ms", None):
            return ""
        wait = 0.020  # a synchronous invoke within a region: about 20 ms, assumed
        per_million = PRICE_PER_MILLION_REQUESTS + 1e6 * wait * FUNCTION_GB * PRICE_PER_GB_SECOND
        return (
            f"Routing, on paper: a routed request is a second invocation (the line's predict"
            f" function, ${PRICE_PER_MILLION_REQUESTS:.2f} per million requests) and the front"
            f" waits for it, billed at {FUNCTION_GB:g} GB. Assuming a synchronous invoke adds"
            f" about {wait * 1000:.0f} ms (locally the hop added"
            f" {self.routed_ms['single row']:.2f} ms for one row and"
            f" {self.routed_ms['1,000 rows']:.2f} ms for 1,000) and the line predicts as fast"
            f" as the front would (its compute replaces the front's), a million routed"
            f" requests cost about ${per_million:.2f} more than a million served by the front"
            f" (${PRICE_PER_GB_SECOND:.10f} per GB-second)."
        )


def _body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()
