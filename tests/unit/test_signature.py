"""Input signatures, derived at registration from real fitted models (through the validator)."""

from pathlib import Path
from typing import Any

import numpy
import pandas
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from registry.client.cli import _signature_text
from registry.manifest import ColumnKind, InputColumn, InputSignature
from registry.registering.registration import Registrar
from registry.store.base import ObjectStore
from registry.store.local import LocalStore
from tests.support.models import joblib_of

CITIES = ["Seoul", "Busan", "Incheon", "Daegu"]


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    """Rows, signatures and thread pools do not depend on the store: the directory one."""
    return LocalStore(tmp_path / "registry")


def customers(rows: int = 60) -> tuple[pandas.DataFrame, list[int]]:
    """A small table as people train on: a string category, a number with gaps, a flag."""
    rng = numpy.random.default_rng(0)
    frame = pandas.DataFrame(
        {
            "city": rng.choice(CITIES, size=rows),
            "age": rng.integers(20, 70, size=rows).astype(float),
            "member": rng.integers(0, 2, size=rows).astype(bool),
        }
    )
    frame.loc[::7, "age"] = numpy.nan
    return frame, [int(value) for value in rng.integers(0, 2, size=rows)]


def column_transformer_pipeline() -> Any:
    frame, labels = customers()
    columns = ColumnTransformer(
        [
            ("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),
            ("age", make_pipeline(SimpleImputer(), StandardScaler()), ["age"]),
            ("member", OrdinalEncoder(), ["member"]),
        ]
    )
    return make_pipeline(columns, LogisticRegression()).fit(frame, labels)


def native_categories() -> Any:
    frame, labels = customers()
    frame = frame.assign(city=frame["city"].astype("category")).drop(columns="member")
    return HistGradientBoostingClassifier(categorical_features="from_dtype").fit(frame, labels)


def numeric_frame() -> Any:
    iris = load_iris(as_frame=True)
    return LinearRegression().fit(iris.data, iris.target)


def plain_forest() -> Any:
    features, labels = make_classification(
        n_samples=50, n_features=3, random_state=0, n_informative=2, n_redundant=0
    )
    return RandomForestClassifier(n_estimators=3, random_state=0).fit(features, labels)


def scaled_linear() -> Any:
    features, labels = make_classification(
        n_samples=50, n_features=3, random_state=0, n_informative=2, n_redundant=0
    )
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)


CITY = InputColumn(name="city", kind=ColumnKind.STRING, categories=sorted(CITIES))
CASES = {
    "column-transformer": (
        column_transformer_pipeline,
        InputSignature(
            columns=[
                CITY,
                InputColumn(name="age", nullable=True),
                InputColumn(name="member", kind=ColumnKind.BOOLEAN, categories=[False, True]),
            ],
            named=True,
            dataframe=True,
        ),
    ),
    "native-categories": (
        native_categories,
        InputSignature(
            columns=[
                CITY.model_copy(update={"nullable": True}),
                InputColumn(name="age", nullable=True),
            ],
            named=True,
            dataframe=True,
        ),
    ),
    "numeric-frame": (
        numeric_frame,
        InputSignature(
            columns=[InputColumn(name=name) for name in load_iris().feature_names],
            named=True,
            dataframe=False,
        ),
    ),
    # Trees take NaN (scikit-learn's allow_nan tag): any column may be null.
    "positional-forest": (
        plain_forest,
        InputSignature(columns=[InputColumn(name=str(i), nullable=True) for i in range(3)]),
    ),
    # A scaler passes NaN on, and LogisticRegression refuses it: no column may be null.
    "scaled-linear": (
        scaled_linear,
        InputSignature(columns=[InputColumn(name=str(i)) for i in range(3)]),
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_signature_is_derived_from_the_fitted_model(registrar: Registrar, case: str) -> None:
    build, expected = CASES[case]

    manifest = registrar.register("model", joblib_of(build())).info.manifest

    assert manifest.signature == expected


def test_a_multi_output_classifier_with_different_class_counts_registers(
    registrar: Registrar,
) -> None:
    features = numpy.random.default_rng(0).normal(size=(40, 3))
    outputs = numpy.stack(
        [(features[:, 0] > 0).astype(int), numpy.digitize(features[:, 1], [-0.5, 0.5])], axis=1
    )
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(features, outputs)

    manifest = registrar.register("multi", joblib_of(model)).info.manifest

    assert (manifest.classes, manifest.output_classes) == (None, [[0, 1], [0, 1, 2]])


def test_versions_registered_before_signatures_still_read(registrar: Registrar) -> None:
    manifest = registrar.register("old", joblib_of(plain_forest())).info.manifest
    stored = manifest.model_dump(mode="json")
    del stored["signature"], stored["output_classes"]

    assert type(manifest).model_validate(stored).signature is None


def test_the_cli_shows_the_signature_in_a_line() -> None:
    _, expected = CASES["column-transformer"]
    text = _signature_text(expected.model_dump(mode="json"))
    assert text == (
        "city: string (4 categories), age: number or null, member: boolean (2 categories); "
        "named, needs a DataFrame"
    )


def test_a_forest_sent_null_answers_as_it_does_on_nan(registrar: Registrar) -> None:
    from registry.serving.cache import ModelCache
    from registry.serving.predictor import LoadedModel, Predictor

    forest = plain_forest()
    registrar.register("forest", joblib_of(forest))
    predictor = Predictor(registrar.registry, ModelCache[LoadedModel](10**8))
    rows = [[None, 0.5, -1.0], [0.2, None, None], [1.0, 2.0, 3.0]]

    result = predictor.predict("forest", None, rows, probabilities=True)

    features = numpy.array(rows, dtype=float)
    assert numpy.array_equal(result.predictions, forest.predict(features))
    assert numpy.array_equal(result.probabilities, forest.predict_proba(features))
