"""Real model families people train, on data scikit-learn ships, with the rows to send them.

Each family is fitted once per session. `test_rows` is what a user holds when calling the
API (a DataFrame for models fitted on one, an array otherwise), so tests compare the API's
answer with the model's own predict() on exactly that input.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy
import pandas
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris, load_wine
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier


@dataclass(frozen=True)
class Family:
    name: str
    model: Any
    test_rows: Any  # a DataFrame or an array, as the model's owner holds the rows

    @property
    def is_frame(self) -> bool:
        return isinstance(self.test_rows, pandas.DataFrame)


def records(frame: pandas.DataFrame) -> list[dict[str, Any]]:
    """JSON records of a DataFrame, a missing value as null (what a client would send)."""
    return [
        {
            key: None if isinstance(value, float) and math.isnan(value) else value
            for key, value in row.items()
        }
        for row in frame.astype(object).to_dict(orient="records")
    ]


def wine_frame() -> tuple[pandas.DataFrame, Any]:
    """The wine data with two string columns derived from it, as a business table has."""
    data = load_wine(as_frame=True)
    frame = data.frame.drop(columns="target").iloc[:, :6].copy()
    frame.columns = [column.replace("/", "_") for column in frame.columns]
    frame["region"] = numpy.array(["north", "south", "east"])[(numpy.arange(len(frame)) // 2) % 3]
    frame["grade"] = pandas.cut(
        frame["alcohol"], [0, 12.5, 13.5, 99], labels=["low", "mid", "high"]
    ).astype(str)
    return frame, data.target


def _split(frame: Any, target: Any) -> tuple[Any, Any, Any]:
    every_third = numpy.arange(len(frame)) % 3 == 0
    if isinstance(frame, pandas.DataFrame):
        return frame[~every_third], target[~every_third], frame[every_third].reset_index(drop=True)
    return frame[~every_third], target[~every_third], frame[every_third]


def column_transformer_on_strings() -> Family:
    frame, target = wine_frame()
    train, y, test = _split(frame, target)
    numbers = [column for column in frame.columns if column not in ("region", "grade")]
    model = make_pipeline(
        ColumnTransformer(
            [
                ("strings", OneHotEncoder(), ["region", "grade"]),
                ("numbers", StandardScaler(), numbers),
            ]
        ),
        LogisticRegression(max_iter=2000),
    ).fit(train, y)
    return Family("wine-onehot", model, test)


def imputing_pipeline() -> Family:
    data = load_iris(as_frame=True)
    frame = data.frame.drop(columns="target").copy()
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    holes = numpy.random.default_rng(0).random(frame.shape) < 0.15
    frame = frame.mask(holes)
    train, y, test = _split(frame, data.target)
    model = make_pipeline(SimpleImputer(strategy="median"), LogisticRegression(max_iter=1000))
    return Family("iris-imputed", model.fit(train, y), test)


def hist_gradient_boosting_with_categories() -> Family:
    frame, target = wine_frame()
    frame["region"] = frame["region"].astype("category")
    frame["grade"] = frame["grade"].astype("category")
    frame.loc[frame.index % 7 == 0, "magnesium"] = numpy.nan
    train, y, test = _split(frame, target)
    model = HistGradientBoostingClassifier(
        categorical_features="from_dtype", max_iter=30, random_state=0
    ).fit(train, y)
    return Family("wine-hgb", model, test)


def ordinal_encoder_with_unknowns() -> Family:
    frame, target = wine_frame()
    train, y, test = _split(frame, target)
    model = make_pipeline(
        ColumnTransformer(
            [
                (
                    "strings",
                    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                    ["region", "grade"],
                )
            ],
            remainder="passthrough",
        ),
        DecisionTreeClassifier(random_state=0),
    ).fit(train, y)
    test = test.copy()
    test.loc[test.index % 4 == 0, "region"] = "west"  # never seen in training
    return Family("wine-ordinal", model, test)


def forest_regressor() -> Family:
    data = load_diabetes()
    train, y, test = _split(data.data, data.target)
    return Family(
        "diabetes-forest",
        RandomForestRegressor(n_estimators=20, random_state=0).fit(train, y),
        test,
    )


def linear_regression() -> Family:
    data = load_diabetes(as_frame=True)
    train, y, test = _split(data.data, data.target)
    return Family("diabetes-linear", LinearRegression().fit(train, y), test)


def multi_output_classifier() -> Family:
    data = load_iris()
    # Two outputs with different class counts: the species (3) and a long petal (2).
    targets = numpy.column_stack([data.target, data.data[:, 2] > 4.5])
    train, y, test = _split(data.data, targets)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(train, y)
    return Family("iris-two-outputs", model, test)


def numeric_dataframe_model() -> Family:
    frame, target = wine_frame()
    frame = frame.drop(columns=["region", "grade"])
    train, y, test = _split(frame, target)
    model = make_pipeline(StandardScaler(), KNeighborsClassifier()).fit(train, y)
    return Family("wine-numbers", model, test)


FAMILIES: dict[str, Callable[[], Family]] = {
    "column_transformer_on_strings": column_transformer_on_strings,
    "imputing_pipeline": imputing_pipeline,
    "hist_gradient_boosting_with_categories": hist_gradient_boosting_with_categories,
    "ordinal_encoder_with_unknowns": ordinal_encoder_with_unknowns,
    "forest_regressor": forest_regressor,
    "linear_regression": linear_regression,
    "multi_output_classifier": multi_output_classifier,
    "numeric_dataframe_model": numeric_dataframe_model,
}


@cache
def family(key: str) -> Family:
    return FAMILIES[key]()
