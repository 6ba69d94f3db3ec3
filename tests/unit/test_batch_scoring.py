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
from registry.inputs import json_values
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
        # a short line and a long one, as many commas in all as the header's: both caught
        (UNNAMED, {"a.csv": b"a,b\n1,2\n3\n4,5,6\n"}, ["has 1 values", "has 3 values"]),
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


@pytest.mark.parametrize(
    "labels",
    [
        numpy.array([0, 1]),
        numpy.array([-3, 7, 120]),  # negative, and far apart
        numpy.array([True, False]),
        numpy.array(["moon", "sea", "éclair", ""], dtype=object),
        numpy.array(["a", "b"]),  # numpy strings
        numpy.array([0.0, 1.5, -0.0]),
        numpy.array([1.0, numpy.nan]),  # a missing answer is an empty cell
    ],
    ids=["ints", "far ints", "bools", "texts", "numpy texts", "floats", "nan"],
)
@pytest.mark.parametrize(
    "keys",
    [numpy.arange(0, 500), numpy.arange(99_950, 100_450), numpy.arange(2**32 - 250, 2**32 + 250)],
    ids=["from 0", "across a digit", "past 32 bits"],
)
def test_numpy_laid_out_lines_are_the_csv_modules_bytes(labels: Any, keys: Any) -> None:
    predictions = labels[numpy.random.default_rng(0).integers(0, len(labels), keys.size)]
    manifest = ModelManifest.model_construct(classes=None)

    laid_out = scoring._plain_csv_output("position", keys, predictions)

    assert laid_out is not None
    expected = scoring._csv_output(
        "position", keys.tolist(), json_values(predictions), None, manifest
    )
    assert laid_out == expected


@pytest.mark.parametrize(
    "predictions",
    [
        numpy.random.default_rng(0).normal(size=500),  # a regressor's values: repr of each
        numpy.array(["a,b", "c"] * 250, dtype=object),  # a label the csv module quotes
        numpy.array([1, "a"] * 250, dtype=object),  # labels that do not sort
    ],
    ids=["many floats", "quoted", "mixed"],
)
def test_answers_numpy_does_not_lay_out_are_left_to_the_csv_module(predictions: Any) -> None:
    assert scoring._plain_csv_output("position", numpy.arange(500), predictions) is None


def test_pandas_reads_numbers_to_the_nearest_double_as_python_does() -> None:
    # pandas 3 deprecated float_precision="round_trip": its default must round as float() does
    rng = numpy.random.default_rng(1)
    values = (rng.normal(size=20_000) * 10.0 ** rng.integers(-300, 300, 20_000)).tolist()
    texts = (
        [repr(v) for v in values]
        + [f"{v:.25g}" for v in values]
        + [
            "0.1000000000000000055511151231257827",
            "2.2250738585072011e-308",  # the boundary of the subnormals
            "1.00000000000000011102230246251565404236316680908203125",  # a halfway case
            "9007199254740993",
            "1e23",
            "4.9406564584124654e-324",
        ]
    )
    read = pandas.read_csv(
        io.BytesIO("\n".join(texts).encode()), header=None, dtype={0: "float64"}, engine="c"
    )[0].to_numpy()
    expected = numpy.array([float(text) for text in texts])
    assert numpy.array_equal(read.view(numpy.int64), expected.view(numpy.int64))
