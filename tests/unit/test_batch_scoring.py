"""One part of a batch job, read by pandas' C parser (plain text) or row by row: malformed
lines go to the errors file in both, and both write the same bytes."""

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy
import pandas
import pytest
from sklearn.linear_model import LogisticRegression

from registry.batching import scoring
from registry.batching.jobs import BatchFormat, BatchJob
from registry.batching.planning import plan_parts
from registry.manifest import ModelManifest
from registry.serving.fastpath import predictors_for
from registry.signature import derive_signature
from registry.store import LocalStore

TRAIN = pandas.DataFrame({"x": [-2.0, -1.0, 0.5, 1.0, 2.0, 3.0], "z": [1.0, 0.5, 0.0, -1, -2, -3]})
NAMED = LogisticRegression().fit(TRAIN, [0, 0, 1, 1, 1, 1])
UNNAMED = LogisticRegression().fit(TRAIN.to_numpy(), [0, 0, 1, 1, 1, 1])


def scored(model: Any, files: dict[str, bytes], tmp_path: Path, plain: bool, **job: Any) -> Any:
    """Each part's output and errors bytes; plain=False reads every part row by row."""
    store = LocalStore(tmp_path / ("plain" if plain else "rows"))
    for name, data in files.items():
        store.put(f"in/{name}", data)
    manifest = ModelManifest.model_construct(
        name="m", version=1, signature=derive_signature(model), feature_names=None,
        n_features_in=None, classes=model.classes_.tolist(),
    )  # fmt: skip
    spec = BatchJob(job_id="j", model="m", version=1, input="/in", output="/out/",
                    format=BatchFormat.CSV, submitted_at=datetime.now(UTC), **job)  # fmt: skip
    written = []
    for part in plan_parts(store, sorted(f"in/{name}" for name in files), spec.format, 1000):
        result = scoring.score_part(
            spec, part, manifest, predictors_for(model), store, store, "out/"
        )
        written.append((store.get(result.output), store.get(result.errors)))
    return written


@pytest.mark.parametrize(
    ("model", "files", "reasons"),
    [
        # a first line with more fields than the header: never read by position
        (NAMED, {"a.csv": b"note,x,z\n7,-2.0,1.5,1.0\n0,1.5,-1.0\n"}, ["the line has 4 values"]),
        (UNNAMED, {"a.csv": b"a,b\n1,2,3\n3,4\n"}, ["the line has 3 values"]),
        # a lone carriage return and a blank line: positions kept
        (UNNAMED, {"a.csv": b"a,b\n-2,1.5\r1,-1\n1,-1\n\n"}, ["has 3 values", "an empty line"]),
        # every line shorter than the header
        (NAMED, {"a.csv": b"x,z,id\n1,2\n3,4\n"}, ["has 2 values", "has 2 values"]),
        # a number beyond a double
        (UNNAMED, {"a.csv": b"a,b\n1e999,1\n0.5,1\n"}, ["expected a finite number, got 1e999"]),
        # a later file whose header lacks the model's columns: its rows, not the job, fail
        (
            NAMED,
            {"a.csv": b"x,z\n1,2\n", "b.csv": b"x,y\n1,2\n"},
            ["in/b.csv: the CSV header lacks"],
        ),
    ],
)
def test_malformed_lines_go_to_the_errors_file_and_both_reads_write_the_same_bytes(
    model: Any, files: dict[str, bytes], reasons: list[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    plain = scored(model, files, tmp_path, plain=True)
    monkeypatch.setattr(scoring, "_plain_csv_rows", lambda *args: None)
    by_rows = scored(model, files, tmp_path, plain=False)
    assert plain == by_rows
    errors = [json.loads(line) for _, part in plain for line in part.decode().splitlines()]
    assert len(errors) == len(reasons)
    for error, reason in zip(errors, reasons, strict=True):
        assert reason in error["reason"], error


def test_the_rows_that_fit_beside_malformed_ones_get_the_models_own_answers(
    tmp_path: Path,
) -> None:
    files = {"a.csv": b"x,z\n0.5,1.0\n1,2,3\n-1.5,0.25\n"}
    ((output, errors),) = scored(NAMED, files, tmp_path, plain=True)
    table = pandas.read_csv(io.BytesIO(output))
    assert table["position"].tolist() == [0, 2]
    expected = NAMED.predict(pandas.DataFrame({"x": [0.5, -1.5], "z": [1.0, 0.25]}))
    assert numpy.array_equal(table["prediction"].to_numpy(), expected)
    assert json.loads(errors)["position"] == 1


def test_a_json_line_nested_past_the_parsers_depth_is_an_error_not_a_failed_part(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path)
    deep = b"[" * 3000 + b"]" * 3000
    store.put("in.jsonl", b"[0.5, 1.0]\n" + deep + b"\n")
    manifest = ModelManifest.model_construct(
        name="m", version=1, signature=derive_signature(UNNAMED), feature_names=None,
        n_features_in=2, classes=[0, 1],
    )  # fmt: skip
    spec = BatchJob(job_id="j", model="m", version=1, input="/in", output="/out/",
                    format=BatchFormat.JSONL, submitted_at=datetime.now(UTC))  # fmt: skip
    (part,) = plan_parts(store, ["in.jsonl"], BatchFormat.JSONL, 1000)
    result = scoring.score_part(spec, part, manifest, predictors_for(UNNAMED), store, store, "o/")
    assert (result.rows_scored, result.rows_failed) == (1, 1)
    assert result.first_errors[0].reason == "the line is not JSON"
