"""The command's files and flags: what spreadsheets and pandas write reads as written, the
predictions file has a column per class, and every flag says what it is for."""

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy
import pandas
import pytest
from hypothesis import given, settings, strategies

from registry.client.cli import (
    _json_column,
    _typed_column,
    build_parser,
    main,
    read_encoded,
    read_rows,
    read_table,
    write_predictions,
)
from registry.client.registry_client import EncodedRows, _encoded_batches

EXPECTED: list[dict[str, Any]] = [
    {"city": "Seoul, Gangnam", "age": 31, "income": 5.5, "member": True},
    {"city": "Busan", "age": None, "income": 4.25, "member": False},
]


def written_by_a_spreadsheet(path: Path) -> Path:
    """Excel's 'CSV UTF-8': a byte-order mark, CRLF ends, a quoted comma, an empty last line."""
    path.write_bytes(
        b"\xef\xbb\xbfcity,age,income,member\r\n"
        b'"Seoul, Gangnam",31,5.5,TRUE\r\n'
        b"Busan,,4.25,FALSE\r\n"
        b"\r\n"
    )
    return path


def test_a_spreadsheets_csv_reads_as_written(tmp_path: Path) -> None:
    assert read_rows(written_by_a_spreadsheet(tmp_path / "rows.csv")) == EXPECTED


def test_what_pandas_writes_reads_as_written(tmp_path: Path) -> None:
    frame = pandas.DataFrame(EXPECTED)
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\r\n")

    assert read_rows(path) == EXPECTED
    lines = tmp_path / "rows.jsonl"
    frame.to_json(lines, orient="records", lines=True)
    lines.write_bytes(b"\xef\xbb\xbf" + lines.read_bytes().replace(b"\n", b"\r\n") + b"\r\n")
    assert read_rows(lines) == [
        {**row, "age": None if row["age"] is None else float(row["age"])} for row in EXPECTED
    ]


def test_a_bom_on_stdin_is_no_part_of_the_first_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = written_by_a_spreadsheet(tmp_path / "rows.csv").read_bytes().decode("utf-8")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(text))

    assert read_rows(Path("-")) == EXPECTED


def test_a_header_alone_says_what_the_first_line_is(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("city,age\r\n")

    with pytest.raises(ValueError, match="the first line names the columns"):
        read_rows(tmp_path / "rows.csv")


def every_action(parser: argparse.ArgumentParser, path: str = "") -> list[tuple[str, Any]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                found += every_action(subparser, f"{path} {name}")
        else:
            found.append((f"{path} {action.dest}", action))
    return found


def test_every_flag_and_argument_says_what_it_is_for() -> None:
    actions = every_action(build_parser())

    assert len(actions) > 80  # every command, with the global flags each one takes
    assert [where for where, action in actions if not action.help] == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--api-key", "k", "--url", "http://h:1", "--json", "classify", "m", "--instances", "[]"],
        ["classify", "m", "--instances", "[]", "--api-key", "k", "--url", "http://h:1", "--json"],
        ["alias", "set", "m", "a", "1", "--api-key", "k", "--url", "http://h:1", "--json"],
    ],
)
def test_global_flags_work_before_and_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)

    assert (args.api_key, args.url, args.json) == ("k", "http://h:1", True)


def test_global_flags_keep_their_defaults_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_REGISTRY_API_KEY", "from-env")
    args = build_parser().parse_args(["classify", "m", "--instances", "[]"])

    assert (args.api_key, args.url, args.json, args.sign) == (
        "from-env",
        "http://127.0.0.1:3000",
        False,
        None,
    )


ANSWER = {
    "model": "wine",
    "version": 3,
    "predictions": [2, 0],
    "probabilities": [[0.0, 0.1, 0.9], [1.0, 0.0, 0.0]],
    "classes": [0, 1, 2],
}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_probabilities_get_a_column_per_class_named_after_it(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"predictions{suffix}"

    summary = write_predictions(ANSWER, path)

    if suffix == ".csv":
        read = pandas.read_csv(path)
    else:
        read = pandas.DataFrame([json.loads(line) for line in path.read_text().splitlines()])
    assert list(read.columns) == ["row", "prediction", "0", "1", "2"]
    assert numpy.array_equal(read.iloc[:, 2:].to_numpy(), numpy.array(ANSWER["probabilities"]))
    assert summary == {
        "model": "wine",
        "version": 3,
        "rows": 2,
        "output": str(path),
        "columns": ["row", "prediction", "0", "1", "2"],
    }


def test_string_classes_name_their_columns_and_a_clash_is_prefixed(tmp_path: Path) -> None:
    labels = {**ANSWER, "classes": ["low", "mid", "high"], "predictions": ["high", "low"]}
    clash = {**ANSWER, "classes": ["row", "mid", "high"], "predictions": ["high", "row"]}

    write_predictions(labels, tmp_path / "labels.csv")
    write_predictions(clash, tmp_path / "clash.csv")

    with (tmp_path / "labels.csv").open() as file:
        assert next(csv.reader(file)) == ["row", "prediction", "low", "mid", "high"]
    with (tmp_path / "clash.csv").open() as file:
        assert next(csv.reader(file))[2:] == [
            "probability_row",
            "probability_mid",
            "probability_high",
        ]


def test_a_multi_output_models_probabilities_are_named_output_and_class(tmp_path: Path) -> None:
    answer = {
        "model": "m",
        "version": 1,
        "predictions": [[1, 0]],
        "probabilities": [[[0.25, 0.75], [0.5, 0.5]]],
        "classes": [[0, 1], [0, 1]],
    }

    write_predictions(answer, tmp_path / "out.jsonl")

    (line,) = (tmp_path / "out.jsonl").read_text().splitlines()
    assert json.loads(line) == {
        "row": 0,
        "prediction": [1, 0],
        "0:0": 0.25,
        "0:1": 0.75,
        "1:0": 0.5,
        "1:1": 0.5,
    }


NUMBER_TEXTS = strategies.one_of(
    strategies.integers(min_value=-(10**30), max_value=10**30).map(str),
    strategies.floats(allow_nan=False, allow_infinity=False).map(repr),
    strategies.floats(allow_nan=False, allow_infinity=False).map(lambda value: f"{value:.6e}"),
    strategies.sampled_from(
        ["01", "+1", "1.", ".5", " 5", "1_000", "1E+05", "-0", "-0.0", "nan", "inf", "", "x"]
    ),
)


@settings(max_examples=300, deadline=None)
@given(cells=strategies.lists(NUMBER_TEXTS, min_size=1, max_size=30))
def test_each_cells_json_text_reads_back_as_the_value_the_column_is_typed_as(
    cells: list[str],
) -> None:
    typed = _typed_column(cells)
    tokens = _json_column(cells)

    read_back = [json.loads(token) for token in tokens]
    assert read_back == typed
    assert [type(value) for value in read_back] == [type(value) for value in typed]


def test_a_csv_is_sent_as_the_rows_read_table_reads(tmp_path: Path) -> None:
    path = written_by_a_spreadsheet(tmp_path / "rows.csv")

    encoded = read_encoded(path)

    names, rows = read_table(path)
    assert encoded.columns == names
    assert [json.loads(text) for text in encoded.texts] == [list(row) for row in rows]


def test_a_row_of_another_width_is_named_before_anything_is_sent(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n3,4,5\n")

    with pytest.raises(ValueError, match=r"row 1 has 3 cells and the header names 2 columns"):
        read_encoded(tmp_path / "rows.csv")


@pytest.mark.parametrize("columns", [None, ["a", "b"]])
@pytest.mark.parametrize(("max_bytes", "max_rows"), [(10**6, 7), (200, 1000), (60, 1000)])
def test_batches_keep_every_row_in_order_within_both_limits(
    columns: list[str] | None, max_bytes: int, max_rows: int
) -> None:
    rows = [[index, f"row {index}"] for index in range(50)]
    encoded = EncodedRows(columns, [json.dumps(row) for row in rows])

    bodies = [json.loads(body) for body in _encoded_batches(encoded, True, max_bytes, max_rows)]
    sizes = [len(body) for body in _encoded_batches(encoded, True, max_bytes, max_rows)]

    parts = [body["dataframe_split"]["data"] if columns else body["instances"] for body in bodies]
    assert [row for part in parts for row in part] == rows
    assert all(len(part) <= max_rows for part in parts)
    assert all(size <= max_bytes for size, part in zip(sizes, parts, strict=True) if len(part) > 1)
    assert all(body["probabilities"] is True for body in bodies)
    assert len(bodies) > 1


@pytest.mark.parametrize("instances", ["5", '{"a": 1}', "[]", "not json"])
def test_instances_that_are_not_a_list_of_rows_say_what_to_send(
    instances: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--url", "http://127.0.0.1:9", "classify", "m", "--instances", instances])

    assert exited.value.code == 2
    assert "--instances takes a JSON list of rows, e.g. '[[0.5, 0.2]]'" in capsys.readouterr().err
