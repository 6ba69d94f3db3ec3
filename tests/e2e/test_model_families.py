"""The models people train, registered and asked over HTTP, answering exactly as they do in Python.

One local_api server (as `make run` starts it) over a directory store holds every family of
tests/support/families.py. Each answer is compared with the model's own predict() and
predict_proba() on the rows its owner holds, with array_equal: no tolerance.
"""

import base64
import json
from pathlib import Path
from typing import Any

import numpy
import pandas
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.support.families import FAMILIES, Family, family, records, wine_frame
from tests.support.http import API_KEY, cli, cli_json, register, request
from tests.support.models import joblib_of

KEY = {"x-api-key": API_KEY, "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def families_url(module_api_url: str) -> str:
    for key in FAMILIES:
        status, answer = register(module_api_url, joblib_of(family(key).model), family(key).name)
        assert status == 201, answer
    return module_api_url


def rows_of(each: Family) -> list[Any]:
    if each.is_frame:
        return records(each.test_rows)
    rows: list[Any] = each.test_rows.tolist()
    return rows


def predict(url: str, name: str, body: Any, route: str = "/predict") -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return request(f"{url}{route}?model={name}", body=data, headers=KEY)


def assert_exact(each: Family, answer: dict[str, Any], probabilities: bool) -> None:
    expected = each.model.predict(each.test_rows)
    got = numpy.array(answer["predictions"], dtype=expected.dtype)
    assert numpy.array_equal(got, expected)
    if not probabilities:
        return
    proba = each.model.predict_proba(each.test_rows)
    if isinstance(proba, list):  # multi-output: [row][output][class]
        for output, per_output in enumerate(proba):
            sent = numpy.array([row[output] for row in answer["probabilities"]])
            assert numpy.array_equal(sent, per_output)
        assert answer["classes"] == [classes.tolist() for classes in each.model.classes_]
    else:
        assert numpy.array_equal(numpy.array(answer["probabilities"]), proba)
        assert answer["classes"] == each.model.classes_.tolist()


@pytest.mark.parametrize("key", list(FAMILIES))
def test_every_family_answers_over_http_exactly_as_its_own_predict(
    families_url: str, key: str
) -> None:
    each = family(key)
    probabilities = hasattr(each.model, "predict_proba")

    status, answer = predict(
        families_url, each.name, {"instances": rows_of(each), "probabilities": probabilities}
    )

    assert status == 200, answer
    assert answer["model"] == each.name
    assert_exact(each, answer, probabilities)


@pytest.mark.parametrize(
    "key", ["imputing_pipeline", "hist_gradient_boosting_with_categories", "linear_regression"]
)
def test_mlflow_clients_dataframe_split_body_at_invocations(families_url: str, key: str) -> None:
    # What mlflow's ScoringServerClient sends for a DataFrame: to_dict(orient="split") through
    # json.dumps, which writes a missing value as a bare NaN.
    each = family(key)
    split = each.test_rows.astype(object).to_dict(orient="split")
    body = json.dumps({"dataframe_split": split}).encode()
    assert b"NaN" in body or key == "linear_regression"

    status, answer = predict(families_url, each.name, body, route="/invocations")

    assert status == 200, answer
    assert_exact(each, answer, probabilities=False)


@pytest.mark.parametrize(
    "form",
    [
        lambda frame: {"dataframe_records": records(frame)},
        lambda frame: {"inputs": {name: [row[name] for row in records(frame)] for name in frame}},
        lambda frame: {
            "dataframe_split": {
                "columns": list(frame.columns[::-1]),
                "data": [list(row.values())[::-1] for row in records(frame)],
            }
        },
    ],
    ids=["dataframe_records", "inputs_by_column", "dataframe_split_reordered"],
)
def test_every_body_form_gives_the_same_exact_answer(families_url: str, form: Any) -> None:
    each = family("column_transformer_on_strings")

    status, answer = predict(families_url, each.name, form(each.test_rows))

    assert status == 200, answer
    assert_exact(each, answer, probabilities=False)


def test_regressors_answer_at_classify_too_and_ping_answers(families_url: str) -> None:
    each = family("forest_regressor")
    status, answer = predict(
        families_url, each.name, {"instances": rows_of(each)[:3]}, route="/classify"
    )
    assert status == 200
    assert answer["predictions"] == each.model.predict(each.test_rows[:3]).tolist()

    status, answer = request(f"{families_url}/ping", method="GET", headers=KEY)
    assert (status, answer) == (200, {"status": "ok"})


def named_row(key: str, **changes: Any) -> dict[str, Any]:
    return {**records(family(key).test_rows)[0], **changes}


@pytest.mark.parametrize(
    ("key", "body", "message"),
    [
        (
            "column_transformer_on_strings",
            {
                "instances": [
                    named_row("column_transformer_on_strings"),
                    named_row("column_transformer_on_strings", region="west"),
                ]
            },
            "row 1, column 'region': the string \"west\" is not a category the model knows; "
            "send one of",
        ),
        (
            "column_transformer_on_strings",
            {"instances": [named_row("column_transformer_on_strings", alcohol="strong")]},
            "row 0, column 'alcohol': expected a number, got the string \"strong\"",
        ),
        (
            "column_transformer_on_strings",
            {"instances": [named_row("column_transformer_on_strings", grade=None)]},
            "row 0, column 'grade': a value is needed",
        ),
        (
            "column_transformer_on_strings",
            {"instances": [list(named_row("column_transformer_on_strings").values())]},
            "row 0 is a list, and this model takes named columns",
        ),
        (
            "imputing_pipeline",
            {"instances": [{"sepal_length": 1.0}]},
            "row 0: the columns do not match the model's (missing sepal_width, petal_length, "
            "petal_width)",
        ),
        (
            "forest_regressor",
            {"instances": [[0.1] * 10], "probabilities": True},
            "has no predict_proba",
        ),
    ],
    ids=[
        "unknown-category",
        "string-for-number",
        "null-not-allowed",
        "positional-for-named",
        "missing-columns",
        "regressor-probabilities",
    ],
)
def test_rows_that_do_not_fit_get_a_422_naming_the_row_and_column(
    families_url: str, key: str, body: Any, message: str
) -> None:
    status, answer = predict(families_url, family(key).name, body)

    assert status == 422, answer
    assert answer["message"].startswith(message) or message in answer["message"], answer


def test_a_versions_signature_is_shown(families_url: str) -> None:
    status, answer = request(
        f"{families_url}/models/{family('column_transformer_on_strings').name}/versions/1",
        method="GET",
    )

    assert status == 200
    signature = answer["signature"]
    columns = {column["name"]: column for column in signature["columns"]}
    assert signature["dataframe"] is True and signature["named"] is True
    assert columns["region"]["kind"] == "string"
    assert sorted(columns["region"]["categories"]) == ["east", "north", "south"]
    assert columns["alcohol"]["kind"] == "number"


def test_rows_read_back_from_json_equal_the_owners_dataframe() -> None:
    # records() is the client's half of the round trip the suite relies on.
    frame = family("hist_gradient_boosting_with_categories").test_rows
    rebuilt = pandas.DataFrame(json.loads(json.dumps(records(frame))))
    assert rebuilt.shape == frame.shape
    assert rebuilt.isna().sum().sum() == frame.isna().sum().sum() > 0


@pytest.fixture
def request_id(request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.id)


def organic_wine_model() -> tuple[Any, pandas.DataFrame]:
    """A boolean column no encoder reads: the fitted model cannot say it takes true/false."""
    frame, target = wine_frame()
    frame = frame.drop(columns=["region", "grade"])
    frame["organic"] = frame["magnesium"] > 100
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(frame, target)
    return model, frame


def test_an_input_example_completes_the_signature_and_is_kept(families_url: str) -> None:
    model, frame = organic_wine_model()
    example = records(frame.head(3))
    without = joblib_of(model)
    assert register(families_url, without, name="organic-plain")[0] == 201
    status, refused = predict(families_url, "organic-plain", {"instances": example})
    # Without an example nothing says "organic" takes booleans: the signature says a number.
    assert (status, refused["code"]) == (422, "invalid_input")
    assert "column 'organic': expected a number, got" in refused["message"]

    status, manifest = request(
        f"{families_url}/models",
        body={
            "name": "organic",
            "artifact": base64.b64encode(without).decode(),
            "input_example": example,
        },
    )

    assert status == 201, manifest
    columns = {column["name"]: column for column in manifest["signature"]["columns"]}
    assert columns["organic"]["kind"] == "boolean"
    assert manifest["input_example"] == example
    rows = frame.iloc[::5].reset_index(drop=True)
    status, answer = predict(families_url, "organic", {"instances": records(rows)})
    assert status == 200, answer
    assert numpy.array_equal(numpy.array(answer["predictions"]), model.predict(rows))
    status, answer = predict(
        families_url, "organic", {"instances": records(rows), "probabilities": True}
    )
    assert numpy.array_equal(numpy.array(answer["probabilities"]), model.predict_proba(rows))


@pytest.mark.parametrize(
    ("example", "message"),
    [
        (
            [{**named_row("column_transformer_on_strings"), "region": "west"}],
            "the model could not predict on input_example (it raised ValueError)",
        ),
        (
            [{"region": "north"}],
            "input_example: row 0: the columns do not match the model's (missing ",
        ),
        (
            [{**named_row("column_transformer_on_strings"), "grade": 5}],
            "input_example: row 0, column 'grade': expected a string, got 5",
        ),
    ],
    ids=["predict-raises", "missing-columns", "wrong-kind"],
)
def test_an_input_example_the_model_cannot_take_is_a_422_and_registers_nothing(
    families_url: str, example: list[Any], message: str, request_id: str
) -> None:
    name = f"strict-{request_id}"
    strict = make_pipeline(
        ColumnTransformer([("strings", OneHotEncoder(), ["region", "grade"])], remainder="drop"),
        LogisticRegression(max_iter=500),
    ).fit(*wine_frame())
    artifact = base64.b64encode(joblib_of(strict)).decode()

    status, answer = request(
        f"{families_url}/models",
        body={"name": name, "artifact": artifact, "input_example": example},
    )

    assert (status, answer["code"]) == (422, "invalid_input"), answer
    assert answer["message"].startswith(message), answer["message"]
    assert request(f"{families_url}/models/{name}", method="GET")[0] == 404
    # Nothing blocks the corrected retry.
    good = [named_row("column_transformer_on_strings")]
    status, manifest = request(
        f"{families_url}/models",
        body={"name": name, "artifact": artifact, "input_example": good},
    )
    assert (status, manifest["version"]) == (201, 1)
    archived = request(f"{families_url}/models/{name}/versions/1", method="DELETE")
    assert archived[0] == 200


def test_the_cli_registers_a_dataframe_pipeline_and_classifies_a_csv_in_batches(
    families_url: str, tmp_path: Path
) -> None:
    each = family("hist_gradient_boosting_with_categories")
    artifact = tmp_path / "wine.joblib"
    artifact.write_bytes(joblib_of(each.model))
    each.test_rows.head(5).to_csv(tmp_path / "example.csv", index=False)
    each.test_rows.to_csv(tmp_path / "rows.csv", index=False)  # a missing value: an empty cell

    registered = cli_json(
        families_url,
        "register",
        str(artifact),
        "--name",
        "wine-cli",
        "--input-example",
        str(tmp_path / "example.csv"),
    )
    answer = cli_json(
        families_url,
        "classify",
        "wine-cli",
        "--input",
        str(tmp_path / "rows.csv"),
        "--batch-rows",
        "7",  # 60 rows: nine requests
        "--probabilities",
        "--output",
        str(tmp_path / "predictions.csv"),
    )

    assert registered["version"] == 1 and len(registered["input_example"]) == 5
    classes = [str(label) for label in each.model.classes_]
    assert answer == {
        "model": "wine-cli",
        "version": 1,
        "rows": len(each.test_rows),
        "output": str(tmp_path / "predictions.csv"),
        "columns": ["row", "prediction", *classes],
    }
    written = pandas.read_csv(tmp_path / "predictions.csv")
    assert numpy.array_equal(written["prediction"], each.model.predict(each.test_rows))
    assert numpy.array_equal(written[classes], each.model.predict_proba(each.test_rows))
    assert list(written["row"]) == list(range(len(each.test_rows)))


def test_the_cli_classifies_json_lines_and_prints_a_table(
    families_url: str, tmp_path: Path
) -> None:
    each = family("multi_output_classifier")
    lines = "\n".join(json.dumps(row) for row in each.test_rows.tolist())
    (tmp_path / "rows.jsonl").write_text(lines + "\n")

    printed = cli(families_url, "classify", each.name, "--input", str(tmp_path / "rows.jsonl"))
    answer = cli_json(families_url, "classify", each.name, "--input", str(tmp_path / "rows.jsonl"))

    assert numpy.array_equal(numpy.array(answer["predictions"]), each.model.predict(each.test_rows))
    assert f"{each.name} version 1" in printed.stdout
    assert len(printed.stdout.splitlines()) == len(each.test_rows) + 2
