"""Turn the rows of a request into what a model's predict() takes, checked against its signature.

A request sends rows in one of the shapes schemas.PredictRequest accepts: positional
lists, objects of column values, columns of values, or MLflow's dataframe_split. They
arrive here as RequestRows, and model_input() makes the model's input of them:

- a float64 array, as before signatures existed, for a model over numbers only. When
  pydantic already proved every value a finite number (RequestRows.numeric), nothing
  is looked at again: that is the path of the blog's clients and of large numeric batches;
- a pandas DataFrame for a model that selects columns by name or encodes strings
  (signature.dataframe). pandas is imported here, on that path only. The columns are
  built as pandas builds them from the same JSON records (DataFrame(records)), so the
  model answers exactly as it does on the DataFrame its owner would build.

Every value is checked against the version's signature first, and a mistake is a 422
that names the row and the column and says what to send instead.
"""

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy

from registry.errors import InvalidInputError
from registry.manifest import (
    ColumnKind,
    InputColumn,
    InputSignature,
    MissingValue,
    ModelManifest,
)

MAX_NAMES_SHOWN = 20
MAX_VALUE_SHOWN = 40


class NumericRows(list[Any]):
    """Rows proved to hold only finite JSON numbers: by pydantic (see schemas.PredictRequest),
    or by the text they were parsed from (mark_numeric_rows)."""


# What the text of a list of lists of JSON numbers is made of: no other JSON value (string,
# true, false, null, object) can be written with these characters alone.
_NUMBER_TEXT = b"0123456789.eE+-,[] \t\n\r"
_ROW_FORMS_OF_NUMBERS = re.compile(rb"\A\s*\{\s*\"(instances|inputs)\"\s*:(.*)\}\s*\Z", re.DOTALL)


def mark_numeric_rows(text: bytes, parsed: Any) -> Any:
    """A body of the form {"instances": [[numbers...], ...]} (or "inputs"), parsed by a JSON
    parser, with its rows marked NumericRows when the text proves them numbers: written with
    digits, signs, points, exponents, commas and brackets only, one bracket per row.

    A large batch then skips a per-value proof that costs as much as parsing it; any other
    body is returned as it was parsed, and proved value by value. (Rows of numbers that are
    not one list each, such as [[[1]], 2], can pass the bracket count: converting them to a
    matrix refuses them, as it refuses rows of unequal length.)
    """
    if not isinstance(parsed, dict) or len(parsed) != 1:
        return parsed
    match = _ROW_FORMS_OF_NUMBERS.match(text)
    if match is None:
        return parsed
    key, rows_text = match.group(1).decode(), match.group(2)
    rows = parsed.get(key)
    if (
        isinstance(rows, list)
        and not rows_text.translate(None, _NUMBER_TEXT)
        and rows_text.count(b"[") == len(rows) + 1
    ):
        parsed[key] = NumericRows(rows)
    return parsed


@dataclass(frozen=True)
class RequestRows:
    """The rows of one request: lists of values in column order, or objects of column values.

    columns names the values of positional rows when the request did (dataframe_split).
    in_model_order: the request said its lists are in the model's order (a dataframe_split
    without columns), so a model that needs a DataFrame takes them too.
    """

    rows: Sequence[Any]
    columns: Sequence[str] | None = None
    in_model_order: bool = False

    @property
    def numeric(self) -> bool:
        return isinstance(self.rows, NumericRows)

    def __len__(self) -> int:
        return len(self.rows)


def rows_from_json(value: Any, form: str, columns: Sequence[str] | None = None) -> RequestRows:
    """The rows one form of a request carried (see schemas.PredictRequest), checked for shape.

    dataframe_split's lists are in the model's column order when it names no columns.
    """
    in_model_order = form == "dataframe_split.data" and columns is None
    records = form == "dataframe_records"
    if records and isinstance(value, list):
        for index, row in enumerate(value):
            if not isinstance(row, Mapping):
                raise InvalidInputError(
                    f"dataframe_records: row {index} is {shown(row)}; every row must be an "
                    "object of column values (send lists of values as instances)"
                )
    if isinstance(value, Mapping) and form in ("instances", "inputs") and columns is None:
        return _rows_of_columns(value, form)
    if not isinstance(value, list):
        raise InvalidInputError(
            f"{form} must be a list of rows (lists of values, or objects of column values), "
            f"not {shown(value)}"
        )
    return RequestRows(value, columns, in_model_order)


def _rows_of_columns(columns: Mapping[str, Any], form: str) -> RequestRows:
    """Rows from an object of columns {"age": [31, 40], "city": ["Seoul", null]}."""
    lengths = set()
    for name, values in columns.items():
        if not isinstance(values, list):
            raise InvalidInputError(
                f"{form}: column {_clipped(str(name))!r} must be a list of values, one per row, "
                f"not {shown(values)}"
            )
        lengths.add(len(values))
    if len(lengths) > 1:
        raise InvalidInputError(
            f"{form}: every column must hold the same number of values (one per row)"
        )
    return RequestRows(
        [list(values) for values in zip(*columns.values(), strict=True)], list(columns)
    )


def signature_of(manifest: ModelManifest) -> InputSignature | None:
    """The version's signature; for a version registered before signatures, what it recorded."""
    if manifest.signature is not None:
        return manifest.signature
    if manifest.feature_names is not None:
        names = manifest.feature_names
    elif manifest.n_features_in is not None:
        names = [str(index) for index in range(manifest.n_features_in)]
    else:
        return None
    return InputSignature(
        columns=[InputColumn(name=name) for name in names],
        named=manifest.feature_names is not None,
    )


def model_input(rows: RequestRows, signature: InputSignature | None) -> Any:
    """The model's input for these rows (an array or a DataFrame), or a 422 saying what is wrong."""
    if len(rows) == 0:
        raise InvalidInputError("no rows were sent: send at least one row")
    if signature is None:  # the model does not say what it takes: numbers, as it gets them
        return _number_matrix(rows, None)
    rows = _by_position_when_unnamed(rows, signature)
    ordered_as_model = rows.columns is None or list(rows.columns) == _names(signature)
    if rows.numeric and ordered_as_model and signature.numbers_only:
        return _number_matrix(rows, signature)
    return input_of_columns(_checked_columns(rows, signature), signature)


def input_of_columns(columns: dict[str, Any], signature: InputSignature) -> Any:
    """The model's input for values already checked against its signature, column by
    column (None for a missing value): a DataFrame, or an array, as model_input makes them.

    A column of numbers may also come as a float64 array, NaN where a value is missing, when
    the model saw a missing number as NaN (MissingValue.NAN): pandas makes the same column of
    it as of the list with None (a batch job's CSV reader does this, at a column's pace)."""
    if signature.dataframe:
        return _dataframe(columns, signature)
    kinds = {column.kind for column in signature.columns}
    dtype = numpy.float64 if kinds == {ColumnKind.NUMBER} else object
    count = len(columns[signature.columns[0].name]) if signature.columns else 0
    matrix = numpy.empty((count, len(signature.columns)), dtype=dtype)
    for index, column in enumerate(signature.columns):
        values = columns[column.name]
        if isinstance(values, numpy.ndarray):
            matrix[:, index] = values
            continue
        missing = None if column.missing is MissingValue.NONE else numpy.nan
        matrix[:, index] = [missing if value is None else value for value in values]
    return matrix


def check_rows(rows: RequestRows, signature: InputSignature) -> None:
    """Raise the 422 model_input() would for these rows, without building the input."""
    if len(rows) == 0:
        raise InvalidInputError("no rows were sent: send at least one row")
    _checked_columns(_by_position_when_unnamed(rows, signature), signature)


def _by_position_when_unnamed(rows: RequestRows, signature: InputSignature) -> RequestRows:
    """A model fitted without column names takes dataframe_split's columns in the order sent,
    as scikit-learn takes a DataFrame's for such a model: there are no names to match."""
    if signature.named or rows.columns is None:
        return rows
    sent, width = list(rows.columns), len(signature.columns)
    if len(sent) != width or len(set(sent)) != len(sent):
        raise InvalidInputError(
            f"dataframe_split names {len(sent)} columns ({listed(sent)}); the model was "
            f"fitted without column names and takes {width} values a row, in its order: "
            f"name {width} distinct columns, or leave columns out"
        )
    return RequestRows(rows.rows, None, in_model_order=True)


def complete_signature(signature: InputSignature | None, example: Sequence[Any]) -> InputSignature:
    """The signature, completed by the registrant's example rows (a list of rows).

    A column the fitted model says nothing about (no encoder's categories) takes the kind of
    the example's values; a column the example leaves null may be missing. A model that
    declares no columns at all takes the example's: its names, if the rows are objects.
    """
    first = example[0] if example else []
    if signature is None:
        named = isinstance(first, Mapping)
        width = len(first) if isinstance(first, Mapping | list) else 0
        names = [str(key) for key in first] if named else [str(i) for i in range(width)]
        signature = InputSignature(columns=[InputColumn(name=name) for name in names], named=named)
    columns = []
    for position, column in enumerate(signature.columns):
        values = [value_in(row, column.name, position) for row in example]
        present = [value for value in values if value is not None]
        update: dict[str, Any] = {"nullable": column.nullable or len(present) < len(values)}
        if not column.categories and present:
            if all(isinstance(value, str) for value in present):
                update["kind"] = ColumnKind.STRING
            elif all(isinstance(value, bool) for value in present):
                update["kind"] = ColumnKind.BOOLEAN
        columns.append(column.model_copy(update=update))
    kinds = {column.kind for column in columns}
    return InputSignature(
        columns=columns,
        named=signature.named,
        dataframe=signature.dataframe or (signature.named and kinds != {ColumnKind.NUMBER}),
    )


def value_in(row: Any, name: str, position: int) -> Any:
    """A row's value of a column: by name in a mapping, by position in a list."""
    if isinstance(row, Mapping):
        return row.get(name)
    if isinstance(row, list) and position < len(row):
        return row[position]
    return None


def prediction_count(predictions: Any) -> int:
    """How many rows a model's predict() answered (a scalar answers one)."""
    return len(predictions) if numpy.ndim(predictions) else 1


def json_values(array: Any) -> list[Any]:
    """An array's values as JSON values: a NaN or infinite prediction becomes null."""
    values = numpy.asarray(array)
    if values.dtype.kind == "f":
        finite = numpy.isfinite(values)
        if not finite.all():
            values = values.astype(object)
            values[~finite] = None
    result: list[Any] = values.tolist()
    return result


def probabilities_per_row(scores: Any) -> list[Any]:
    """[row][class], or [row][output][class] for a multi-output classifier's list of arrays.

    A probability that is not finite (a model overflowing on extreme rows) is null.
    """
    if isinstance(scores, list):
        outputs = [json_values(output) for output in scores]
        return [[output[row] for output in outputs] for row in range(len(outputs[0]))]
    return json_values(scores)


def explain_rejection(rows: RequestRows, signature: InputSignature | None) -> str | None:
    """When the model refused rows, the first value outside a column's known categories."""
    if signature is None or not any(column.categories for column in signature.columns):
        return None
    try:
        columns = _checked_columns(_by_position_when_unnamed(rows, signature), signature)
    except InvalidInputError:
        return None
    for column in signature.columns:
        if not column.categories:
            continue
        known = set(column.categories)
        for row, value in enumerate(columns[column.name]):
            if value is not None and value not in known:
                return (
                    f"row {row}, column {column.name!r}: {shown(value)} is not a category the "
                    f"model knows; send one of {listed(column.categories)}"
                )
    return None


def _number_matrix(rows: RequestRows, signature: InputSignature | None) -> Any:
    """Rows of numbers as one float64 array, as scikit-learn itself would convert them."""
    values: Sequence[Any] = rows.rows
    if isinstance(values[0], Mapping):
        if signature is None or not signature.named:
            raise InvalidInputError(
                "the model was fitted without column names: send each row as a list of values"
            )
        names = _names(signature)
        values = [_ordered(row, index, names, signature) for index, row in enumerate(values)]
    try:
        features = numpy.asarray(values, dtype=numpy.float64)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError("every row must be a list of numbers of one length") from exc
    if features.ndim != 2:
        raise InvalidInputError("every row must be a list of numbers of one length")
    expected = len(signature.columns) if signature is not None else None
    if expected is not None and features.shape[1] != expected:
        raise InvalidInputError(
            f"the model expects {expected} features per row, got {features.shape[1]}"
        )
    if not numpy.isfinite(features).all():
        raise InvalidInputError("feature values must be finite numbers (no NaN or infinity)")
    return features


def _names(signature: InputSignature) -> list[str]:
    return [column.name for column in signature.columns]


def _ordered(
    row: Mapping[str, Any], index: int, names: list[str], signature: InputSignature
) -> list[Any]:
    if len(row) != len(names) or any(name not in row for name in names):
        _raise_wrong_columns(index, row.keys(), signature)
    return [row[name] for name in names]


def _checked_columns(rows: RequestRows, signature: InputSignature) -> dict[str, list[Any]]:
    """The request's values, column by column in the signature's order, each one checked."""
    names = _names(signature)
    by_position = rows.columns
    if by_position is not None:
        if sorted(by_position) != sorted(names) or len(set(by_position)) != len(by_position):
            _raise_wrong_columns(None, by_position, signature)
        order = [by_position.index(name) for name in names]
    else:
        order = list(range(len(names)))
    lists_allowed = by_position is not None or not signature.dataframe or rows.in_model_order
    if lists_allowed and all(type(row) is list and len(row) == len(names) for row in rows.rows):
        by_column = list(zip(*rows.rows, strict=True))
        columns = {
            name: list(by_column[position]) for name, position in zip(names, order, strict=True)
        }
        if all(_column_fits(columns[column.name], column) for column in signature.columns):
            return columns
    # Objects of column values, or a value that does not fit: row by row, to name the first
    # mistake by its row and column.
    columns = {name: [] for name in names}
    for index, row in enumerate(rows.rows):
        if isinstance(row, Mapping):
            if not signature.named:
                raise InvalidInputError(
                    f"row {index} is an object, and the model was fitted without column names: "
                    "send each row as a list of values"
                )
            if by_position is not None:
                raise InvalidInputError(
                    f"row {index} is an object; dataframe_split's data are lists of values, "
                    "in the order of its columns"
                )
            values = _ordered(row, index, names, signature)
        elif isinstance(row, list):
            if by_position is None and signature.dataframe and not rows.in_model_order:
                raise InvalidInputError(
                    f"row {index} is a list, and this model takes named columns "
                    f"({listed(names)}): send each row as an object of column values, "
                    'or columns and rows as {"dataframe_split": {"columns": [...], "data": [...]}}'
                )
            if len(row) != len(names):
                raise InvalidInputError(
                    f"row {index} has {len(row)} values; the model takes {len(names)}"
                    + (f": {listed(names)}" if signature.named else "")
                )
            values = [row[position] for position in order]
        else:
            raise InvalidInputError(
                f"row {index} is {shown(row)}: send each row as a list of values "
                "or an object of column values"
            )
        for column, value in zip(signature.columns, values, strict=True):
            _check_value(value, column, index)
            columns[column.name].append(value)
    return columns


_EXPECTED = {
    ColumnKind.NUMBER: "a number",
    ColumnKind.STRING: "a string",
    ColumnKind.BOOLEAN: "true or false",
}


def _check_value(value: Any, column: InputColumn, row: int) -> None:
    if value is None:
        if column.nullable:
            return
        raise InvalidInputError(
            f"row {row}, column {column.name!r}: a value is needed (the model cannot take a "
            f"missing value here): send {_EXPECTED[column.kind]}"
        )
    kind = column.kind
    if kind is ColumnKind.NUMBER:
        fits = isinstance(value, int | float) and not isinstance(value, bool)
        if fits and not _finite(value):
            raise InvalidInputError(
                f"row {row}, column {column.name!r}: expected a finite number, got {value!r}"
                + (" (send null for a missing value)" if column.nullable else "")
            )
    elif kind is ColumnKind.STRING:
        fits = isinstance(value, str)
    else:
        fits = isinstance(value, bool)
    if not fits:
        raise InvalidInputError(
            f"row {row}, column {column.name!r}: expected {_EXPECTED[kind]}, got {shown(value)}"
            + (" (null marks a missing value)" if column.nullable else "")
        )


_TYPES: dict[ColumnKind, set[type]] = {
    ColumnKind.NUMBER: {int, float},
    ColumnKind.STRING: {str},
    ColumnKind.BOOLEAN: {bool},
}


def _column_fits(values: list[Any], column: InputColumn) -> bool:
    """Whether every value fits the column, as _check_value would find, at a column's pace.
    False sends the caller to _check_value, value by value, for the message."""
    types = set(map(type, values))
    if not types <= _TYPES[column.kind] | ({type(None)} if column.nullable else set()):
        return False
    if column.kind is not ColumnKind.NUMBER:
        return True
    try:
        numbers = numpy.fromiter((value for value in values if value is not None), numpy.float64)
    except OverflowError:  # an integer beyond a double
        return False
    return bool(numpy.isfinite(numbers).all())


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond a double
        return False


def _raise_wrong_columns(
    row: int | None, sent: Sequence[str] | Any, signature: InputSignature
) -> None:
    names = _names(signature)
    sent = list(sent)
    missing = [name for name in names if name not in sent]
    unknown = [name for name in sent if name not in names]
    where = f"row {row}: " if row is not None else ""
    parts = []
    if missing:
        parts.append(f"missing {listed(missing)}")
    if unknown:
        parts.append(f"unknown {listed(unknown)}")
    if not parts:
        parts.append("a column is named twice")
    nullable = any(column.nullable for column in signature.columns)
    raise InvalidInputError(
        f"{where}the columns do not match the model's ({'; '.join(parts)}): send exactly "
        f"{listed(names)}" + (" (null for a missing value where allowed)" if nullable else "")
    )


def _dataframe(columns: dict[str, Any], signature: InputSignature) -> Any:
    import pandas

    frame = pandas.DataFrame(columns)
    for column in signature.columns:
        values = columns[column.name]
        if isinstance(values, numpy.ndarray) or not any(value is None for value in values):
            continue
        if column.missing is MissingValue.NONE:
            # The model learned None (an object column of None): pandas would make it NaN.
            frame[column.name] = pandas.Series(values, dtype=object)
        elif column.kind is ColumnKind.BOOLEAN:
            # pandas keeps None in a column of booleans; the model learned NaN.
            marked = [numpy.nan if value is None else value for value in values]
            frame[column.name] = pandas.Series(marked, dtype=object)
        elif all(value is None for value in values):
            # All missing: pandas would make an object column of None, where a column with
            # some values holds NaN (floats, or pandas' strings). Missing is missing.
            dtype = "float64" if column.kind is ColumnKind.NUMBER else "str"
            frame[column.name] = pandas.Series(values, dtype=dtype)
    return frame


def listed(names: Sequence[Any]) -> str:
    shown = ", ".join(
        _clipped(name) if isinstance(name, str) else shown(name) for name in names[:MAX_NAMES_SHOWN]
    )
    more = len(names) - MAX_NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _clipped(text: str) -> str:
    return text if len(text) <= MAX_VALUE_SHOWN else text[:MAX_VALUE_SHOWN] + "..."


def shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= MAX_VALUE_SHOWN else value[:MAX_VALUE_SHOWN] + "..."
        return f'the string "{text}"'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return "a value of another kind"
