"""A fitted model's input signature: its columns, what kind each takes, which may be null.

Derived in the validator's sandbox (it reads the loaded estimator) from what fitting
left behind: `feature_names_in_`, the columns a ColumnTransformer routes to each
transformer, the categories of OneHotEncoder and OrdinalEncoder, the imputers (their
columns may be null), and HistGradientBoosting, which handles missing values itself
and encodes its categorical features with an OrdinalEncoder of its own. A model whose
every step takes NaN by scikit-learn's own tags (a tree, a forest, a scaler before one)
may be sent null in any column.

Only what enters the model is read: the first step of a pipeline, and whatever a
ColumnTransformer routes columns to; what a later step sees are transformed columns.
"""

from typing import Any

import numpy
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
    TargetEncoder,
)
from sklearn.utils import get_tags

from registry.manifest import (
    MAX_CATEGORIES_KEPT,
    ColumnKind,
    InputColumn,
    InputSignature,
    MissingValue,
)

IMPUTERS = (SimpleImputer, KNNImputer)
ENCODERS = (OneHotEncoder, OrdinalEncoder, TargetEncoder)
TEXT_VECTORIZERS = (CountVectorizer, TfidfVectorizer, HashingVectorizer)
SCALERS = (StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler)
# Steps whose output columns are their input columns, in order: what follows sees the same.
COLUMN_KEEPING = (*IMPUTERS, *SCALERS)
HIST_GRADIENT_BOOSTING = (HistGradientBoostingClassifier, HistGradientBoostingRegressor)


def derive_signature(estimator: Any) -> InputSignature | None:
    """The model's input signature; None when it does not say how many inputs it takes."""
    names = getattr(estimator, "feature_names_in_", None)
    count = getattr(estimator, "n_features_in_", None)
    if names is not None:
        labels = [str(name) for name in names]
    elif count is not None:
        labels = [str(index) for index in range(int(count))]  # positional: "0", "1", ...
    else:
        return None
    nullable = _passes_missing_values(estimator)
    columns = {label: InputColumn(name=label, nullable=nullable) for label in labels}
    needs_dataframe = _walk(estimator, labels, columns)
    kinds = {column.kind for column in columns.values()}
    # An encoder fitted on a DataFrame compares each value with categories of the column's
    # own dtype (an int64 id beyond 2**53 is not its float): it gets the DataFrame too.
    encoded = any(column.categories is not None for column in columns.values())
    return InputSignature(
        columns=list(columns.values()),
        named=names is not None,
        dataframe=names is not None
        and (needs_dataframe or encoded or kinds != {ColumnKind.NUMBER}),
    )


def _walk(step: Any, scope: list[str], columns: dict[str, InputColumn]) -> bool:
    """Record what step learned of the columns in scope; True if it selects columns by name."""
    if isinstance(step, Pipeline):
        # Steps that keep their columns (an imputer, a scaler) pass them on to the next,
        # so an encoder after an imputer still tells its columns' kind and categories.
        by_name = False
        for _, each in step.steps:
            if each in (None, "passthrough"):
                continue
            by_name |= _walk(each, scope, columns)
            if not isinstance(each, COLUMN_KEEPING):
                break
        return by_name
    if isinstance(step, ColumnTransformer):
        by_name = any(_names_columns(spec) for _, _, spec in step.transformers)
        indices = getattr(step, "_transformer_to_input_indices", {})
        for name, transformer, _ in step.transformers_:
            routed = [scope[i] for i in indices.get(name, []) if i < len(scope)]
            if not isinstance(transformer, str):
                by_name |= _walk(transformer, routed, columns)
        return by_name
    if isinstance(step, ENCODERS):
        for label, categories in zip(scope, getattr(step, "categories_", []), strict=False):
            columns[label] = _encoded_column(label, categories, columns[label])
        return False
    if isinstance(step, TEXT_VECTORIZERS):
        for label in scope:  # routed by a ColumnTransformer: a column of texts
            columns[label] = columns[label].model_copy(update={"kind": ColumnKind.STRING})
        return False
    if isinstance(step, IMPUTERS):
        statistics = getattr(step, "statistics_", None)
        texts = statistics is not None and any(isinstance(value, str) for value in statistics)
        for label in scope:
            update: dict[str, Any] = {"nullable": True}
            if getattr(step, "missing_values", numpy.nan) is None:
                update["missing"] = MissingValue.NONE
            if texts:
                update["kind"] = ColumnKind.STRING
            columns[label] = columns[label].model_copy(update=update)
        return False
    if isinstance(step, HIST_GRADIENT_BOOSTING):
        for label in scope:  # missing values go down a branch of their own
            columns[label] = columns[label].model_copy(update={"nullable": True})
        preprocessor = getattr(step, "_preprocessor", None)
        if preprocessor is not None:
            _walk(preprocessor, scope, columns)
            for label in scope:
                columns[label] = columns[label].model_copy(update={"nullable": True})
        return False
    return False


def _passes_missing_values(step: Any) -> bool:
    """Whether every step takes NaN in any column (trees since scikit-learn 1.4, scalers...).

    From scikit-learn's own input tags. Encoders and column transformers are left to _walk,
    which knows their categories and routes.
    """
    if isinstance(step, Pipeline):
        steps = [each for _, each in step.steps if each not in (None, "passthrough")]
        return bool(steps) and all(_passes_missing_values(each) for each in steps)
    if isinstance(step, (ColumnTransformer, *ENCODERS)):
        return False
    try:
        return bool(get_tags(step).input_tags.allow_nan)
    except Exception:  # an estimator whose tags cannot be read says nothing
        return False


def _names_columns(spec: Any) -> bool:
    if isinstance(spec, str):
        return True
    return isinstance(spec, list | tuple) and any(isinstance(item, str) for item in spec)


def _encoded_column(label: str, categories: Any, seen: InputColumn) -> InputColumn:
    values = list(numpy.asarray(categories, dtype=object))
    missing = [value for value in values if value is None or _is_nan(value)]
    learned_none = any(value is None for value in missing) and not any(map(_is_nan, missing))
    known = [value.item() if isinstance(value, numpy.generic) else value for value in values]
    known = [value for value in known if not (value is None or _is_nan(value))]
    if known and all(isinstance(value, bool) for value in known):
        kind = ColumnKind.BOOLEAN
    elif any(isinstance(value, str) for value in known):
        kind = ColumnKind.STRING
    else:
        kind = ColumnKind.NUMBER
    keep = len(known) <= MAX_CATEGORIES_KEPT and all(
        not isinstance(value, str) or len(value) <= 256 for value in known
    )
    return InputColumn(
        name=label,
        kind=kind,
        nullable=seen.nullable or bool(missing),
        categories=known if keep else None,
        missing=MissingValue.NONE if learned_none else seen.missing,
    )


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value
