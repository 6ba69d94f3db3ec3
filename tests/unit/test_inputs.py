"""Rows to model input: what a review found, each kept fixed against real fitted models.

Every answer is compared with the model's own predict on the rows its owner holds.
"""

import json
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy
import pandas
import pytest
from hypothesis import given, settings, strategies
from sklearn.compose import make_column_transformer
from sklearn.datasets import load_iris, load_wine
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from registry import inputs
from registry.errors import InvalidArtifactError, InvalidInputError
from registry.http.schemas import PredictRequest, predict_response_json
from registry.inputs import RequestRows
from registry.manifest import ColumnKind, InputColumn, InputSignature, MissingValue
from registry.registering.registration import Registrar
from registry.serving.cache import ModelCache
from registry.serving.predictor import LoadedModel, Predictor
from registry.store.base import ObjectStore
from registry.store.local import LocalStore
from tests.support.models import joblib_of


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    """Rows, signatures and thread pools do not depend on the store: the directory one."""
    return LocalStore(tmp_path / "registry")


def served(registrar: Registrar, name: str, model: Any, **options: Any) -> Predictor:
    registrar.register(name, joblib_of(model), **options)
    return Predictor(registrar.registry, ModelCache[LoadedModel](10**8))


def records(frame: pandas.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            key: None if isinstance(value, float) and value != value else value
            for key, value in row.items()
        }
        for row in frame.astype(object).to_dict(orient="records")
    ]


def wine_with_grades(missing: Any) -> tuple[pandas.DataFrame, Any]:
    """Wine with a string column whose missing value is `missing` (None or NaN)."""
    data = load_wine(as_frame=True)
    frame = data.data.iloc[:, :3].copy()
    grades = numpy.array(["a", "b", "c"], dtype=object)[data.target].copy()
    grades[data.target == 2] = missing
    frame["grade"] = pandas.Series(grades, dtype=object)
    return frame, data.target


@pytest.mark.parametrize("missing", [None, numpy.nan], ids=["learned-None", "learned-NaN"])
def test_a_missing_string_reaches_the_encoder_as_the_missing_value_it_learned(
    registrar: Registrar, missing: Any
) -> None:
    frame, target = wine_with_grades(missing)
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["grade"]), remainder="passthrough"),
        LogisticRegression(max_iter=5000),
    ).fit(frame, target)
    predictor = served(registrar, "graded", model)

    result = predictor.predict("graded", None, records(frame))

    signature = predictor.model("graded").loaded.signature
    assert signature is not None and signature.columns[-1].nullable
    expected = MissingValue.NONE if missing is None else MissingValue.NAN
    assert signature.columns[-1].missing is expected
    assert numpy.array_equal(result.predictions, model.predict(frame))


def test_an_imputer_before_an_encoder_leaves_the_column_a_nullable_string(
    registrar: Registrar,
) -> None:
    frame, target = wine_with_grades(numpy.nan)
    model = make_pipeline(
        make_column_transformer(
            (make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()), ["grade"]),
            remainder="passthrough",
        ),
        LogisticRegression(max_iter=5000),
    ).fit(frame, target)
    predictor = served(registrar, "imputed", model)

    result = predictor.predict("imputed", None, records(frame))

    column = predictor.model("imputed").loaded.signature.columns[-1]  # type: ignore[union-attr]
    assert (column.kind, column.nullable) == (ColumnKind.STRING, True)
    assert numpy.array_equal(result.predictions, model.predict(frame))


def test_integers_beyond_a_double_keep_their_last_digit(registrar: Registrar) -> None:
    ids = pandas.DataFrame({"id": [2**53 + 4, 5, 7] * 10})
    model = make_pipeline(
        OneHotEncoder(handle_unknown="ignore"), DecisionTreeClassifier(random_state=0)
    ).fit(ids, [0, 1, 1] * 10)
    predictor = served(registrar, "ids", model)
    body = PredictRequest.model_validate({"instances": [{"id": 2**53 + 3}, {"id": 2**53 + 4}]})

    result = predictor.predict("ids", None, body.rows())

    owners = pandas.DataFrame({"id": [2**53 + 3, 2**53 + 4]})
    assert numpy.array_equal(result.predictions, model.predict(owners))


def test_a_text_column_is_a_string_and_dataframe_split_without_columns_is_in_model_order(
    registrar: Registrar,
) -> None:
    frame = pandas.DataFrame(
        {"review": ["great wine", "awful", "great", "bad taste"] * 5, "price": range(20)}
    )
    model = make_pipeline(
        make_column_transformer((TfidfVectorizer(), "review"), remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, [1, 0, 1, 0] * 5)
    predictor = served(registrar, "reviews", model)
    split = {"dataframe_split": {"data": frame.head(4).values.tolist()}}

    result = predictor.predict("reviews", None, PredictRequest.model_validate(split).rows())

    assert predictor.model("reviews").loaded.signature.columns[0].kind is ColumnKind.STRING  # type: ignore[union-attr]
    assert numpy.array_equal(result.predictions, model.predict(frame.head(4)))


def test_a_model_that_raises_anything_on_rows_is_a_422_naming_only_the_type(
    registrar: Registrar,
) -> None:
    # five neighbours asked of three samples: every predict raises ValueError
    model = KNeighborsClassifier(n_neighbors=5).fit([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]], [0, 1, 0])
    predictor = served(registrar, "neighbours", model)

    with pytest.raises(InvalidInputError, match=r"could not predict on these rows \(it raised"):
        predictor.predict("neighbours", None, [[1.0, 2.0]])


def test_a_model_that_says_nothing_of_its_rows_needs_an_example(registrar: Registrar) -> None:
    """Fitted on dicts, it has no n_features_in_: without an example nothing shows what rows
    it takes (the validator would have nothing to try it on)."""
    model = make_pipeline(DictVectorizer(), LogisticRegression()).fit(
        [{"a": 1.0}, {"b": 2.0}, {"a": 3.0}], [0, 1, 0]
    )
    with pytest.raises(InvalidArtifactError, match="Register it with an input_example"):
        registrar.register("dicts", joblib_of(model))


def test_a_non_finite_probability_is_null_in_valid_json(registrar: Registrar) -> None:
    features, target = load_iris(return_X_y=True)
    model = GaussianNB().fit(features, target)
    predictor = served(registrar, "bayes", model)
    rows = [[1e200, 0.0, 0.0, 0.0], [5.0, 3.0, 1.5, 0.2]]

    result = predictor.predict("bayes", None, rows, probabilities=True)
    text = predict_response_json("bayes", result, single=False, with_probabilities=True)

    answer = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the answer"))
    expected = model.predict_proba(numpy.array(rows))
    assert not numpy.isfinite(expected[0]).all()  # the model itself overflows on row 0
    assert answer["probabilities"][0] == [None if not numpy.isfinite(p) else p for p in expected[0]]
    assert answer["probabilities"][1] == expected[1].tolist()


def test_a_model_that_does_not_take_rows_is_refused_at_registration(
    registrar: Registrar,
) -> None:
    texts = ["great wine", "awful", "great", "bad taste"] * 5
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, [1, 0, 1, 0] * 5)

    with pytest.raises(InvalidArtifactError, match="does not answer one prediction per row"):
        registrar.register("texts", joblib_of(model), input_example=[{"review": "great"}] * 3)
    assert registrar.registry.list_versions("texts") == []


def test_the_same_bytes_with_another_example_are_a_version_of_their_own(
    registrar: Registrar,
) -> None:
    frame, target = wine_with_grades(numpy.nan)
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["grade"]), remainder="passthrough"),
        LogisticRegression(max_iter=5000),
    ).fit(frame, target)
    artifact = joblib_of(model)
    example = records(frame.head(2))

    first = registrar.register("graded", artifact)
    with_example = registrar.register("graded", artifact, input_example=example)
    again = registrar.register("graded", artifact, input_example=example)

    assert (first.info.manifest.version, first.created) == (1, True)
    assert (with_example.info.manifest.version, with_example.created) == (2, True)
    assert (again.info.manifest.version, again.created) == (2, False)
    assert with_example.info.manifest.input_example == example


def test_long_unknown_column_names_are_clipped_in_the_message(registrar: Registrar) -> None:
    frame, target = wine_with_grades(numpy.nan)
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["grade"]), remainder="passthrough"),
        LogisticRegression(max_iter=5000),
    ).fit(frame, target)
    predictor = served(registrar, "graded", model)
    row = {**records(frame.head(1))[0], "x" * 100_000: 1}

    with pytest.raises(InvalidInputError) as refused:
        predictor.predict("graded", None, RequestRows([row]))

    assert "unknown " + "x" * 40 + "..." in refused.value.message
    assert len(refused.value.message) < 1000


@pytest.mark.parametrize(
    ("body", "marked"),
    [
        ('{"instances": [[0.5, -0.2], [1e5, 2E-3]]}', True),
        ('  {"inputs":[[1,2],[3,4]]}\n', True),
        ('{"instances": []}', True),
        ('{"instances": [[1, true]]}', False),
        ('{"instances": [[1, null]]}', False),
        ('{"instances": [["1", 2]]}', False),
        ('{"instances": [[[1, 2]]]}', False),
        ('{"instances": [1, 2]}', False),
        ('{"instances": [{"a": 1}]}', False),
        ('{"instances": [[1, 2]], "probabilities": true}', False),
        ('{"dataframe_records": [[1, 2]]}', False),
    ],
)
def test_only_bodies_whose_text_proves_rows_of_numbers_skip_the_per_value_proof(
    body: str, marked: bool
) -> None:
    from registry.http.api import parse_json_body
    from registry.inputs import NumericRows

    parsed = parse_json_body(body)

    assert parsed == json.loads(body)  # the same values either way
    assert isinstance(next(iter(parsed.values())), NumericRows) is marked


COLUMNS = [
    InputColumn(name="n", kind=ColumnKind.NUMBER, nullable=True),
    InputColumn(name="m", kind=ColumnKind.NUMBER),
    InputColumn(name="s", kind=ColumnKind.STRING, nullable=True),
    InputColumn(name="b", kind=ColumnKind.BOOLEAN),
]
VALUES = strategies.one_of(
    strategies.none(),
    strategies.booleans(),
    strategies.integers(min_value=-(2**1100), max_value=2**1100),
    strategies.floats(allow_nan=True, allow_infinity=True),
    strategies.text(max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    rows=strategies.lists(strategies.lists(VALUES, min_size=4, max_size=4), min_size=1),
    columns=strategies.sampled_from([None, ["n", "m", "s", "b"], ["b", "s", "m", "n"]]),
)
def test_checking_lists_column_by_column_finds_what_checking_value_by_value_finds(
    rows: list[list[Any]], columns: list[str] | None
) -> None:
    signature = InputSignature(columns=COLUMNS, named=True, dataframe=True)
    request = RequestRows(rows, columns, in_model_order=columns is None)

    def outcome() -> Any:
        try:
            return inputs._checked_columns(request, signature)
        except InvalidInputError as error:
            return str(error)

    with patch.object(inputs, "_column_fits", return_value=False):
        value_by_value = outcome()
    assert outcome() == value_by_value


def test_dataframe_split_columns_are_positions_for_a_model_fitted_without_names(
    registrar: Registrar,
) -> None:
    features, target = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(features, target)
    predictor = served(registrar, "iris", model)
    split = {"columns": ["a", "b", "c", "d"], "data": features.tolist()}

    answer = predictor.predict(
        "iris", None, PredictRequest.model_validate({"dataframe_split": split}).rows()
    )

    assert numpy.array_equal(answer.predictions, model.predict(features))
    too_few = PredictRequest.model_validate(
        {"dataframe_split": {"columns": ["a"], "data": [[1.0]]}}
    ).rows()
    with pytest.raises(InvalidInputError, match="dataframe_split names 1 columns"):
        predictor.predict("iris", None, too_few)


@pytest.mark.parametrize("columns", [["a"], ["a", "b", "c", "d", "e"], ["a", "a", "b", "c"]])
def test_dataframe_split_for_a_model_without_names_needs_one_distinct_column_a_value(
    registrar: Registrar, columns: list[str]
) -> None:
    features, target = load_iris(return_X_y=True)
    predictor = served(registrar, "iris", LogisticRegression(max_iter=500).fit(features, target))
    split = {"columns": columns, "data": [[1.0] * len(columns)]}

    with pytest.raises(InvalidInputError, match="fitted without column names and takes 4 values"):
        predictor.predict(
            "iris", None, PredictRequest.model_validate({"dataframe_split": split}).rows()
        )


def test_an_unknown_category_sent_by_column_name_to_a_model_without_names_is_named(
    registrar: Registrar,
) -> None:
    colours = numpy.array([["red"], ["blue"], ["red"], ["blue"]], dtype=object)
    model = make_pipeline(OneHotEncoder(), LogisticRegression()).fit(colours, [0, 1, 0, 1])
    predictor = served(registrar, "colours", model, input_example=[["red"], ["blue"]])
    split = {"columns": ["colour"], "data": [["green"]]}

    unknown = 'the string "green" is not a category the model knows'
    with pytest.raises(InvalidInputError, match=unknown):
        predictor.predict(
            "colours", None, PredictRequest.model_validate({"dataframe_split": split}).rows()
        )
