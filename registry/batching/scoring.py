"""Score one part of a batch job: read its rows, check them, predict, write the answers.

This is the predictor's own code for one loaded version (registry.serving.predictor's
LoadedModel and the model_input path of registry.inputs): a row gets the answer a
request with the same values would get. What differs is the reading: a CSV's text
becomes typed values column by column (numbers with Python's float, as the JSON parser
reads them), not row by row, and a row that does not fit is set aside with its position
and the reason instead of refusing the rest.

Output, one file per part, rows in input order:
    CSV:  <id column or "position">,prediction[,probability_<class>...]
    JSON lines: {"<id column or position>": ..., "prediction": ..., "probabilities": [...]}
and errors/part-<n>.jsonl: {"position": ..., "reason": ...} for every row not scored.
"""

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy

from registry.batching.jobs import (
    MAX_ERRORS_SHOWN,
    BatchFormat,
    BatchJob,
    InputPart,
    PartResult,
    RowError,
    errors_name,
    output_name,
)
from registry.batching.planning import read_header
from registry.errors import BatchInputError, InvalidInputError
from registry.inputs import (
    RequestRows,
    check_rows,
    explain_rejection,
    input_of_columns,
    json_values,
    listed,
    probabilities_per_row,
    shown,
    signature_of,
)
from registry.manifest import ColumnKind, InputColumn, InputSignature, MissingValue, ModelManifest
from registry.store.base import ObjectStore

POSITION = "position"
NEWLINE, COMMA = 10, 44
_NEEDED = "column {!r}: a value is needed (the model cannot take a missing value here)"
_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class ColumnMap:
    """Where each of the model's columns is in an input row (by position in a CSV's
    header), and where the id column is."""

    signature: InputSignature
    positions: list[int] | None  # CSV only: the header index of each model column
    id_position: int | None
    width: int | None  # the CSV header's column count


def batch_signature(manifest: ModelManifest) -> InputSignature:
    """What the version takes; a model that says nothing takes numbers only."""
    signature = signature_of(manifest)
    if signature is None:
        raise BatchInputError(
            f"version {manifest.version} of {manifest.name!r} records no input columns, so a "
            "batch job cannot tell which values of a row are its features: register it again "
            "(a fitted model with n_features_in_, or an input_example)"
        )
    return signature


def csv_columns(header: str, signature: InputSignature, id_column: str | None) -> ColumnMap:
    """Map a CSV header to the model's columns: by name when the model was fitted with names
    (other columns are passed over), else every column but the id column, in order."""
    names = _csv_fields(header)
    if names is None:
        raise BatchInputError("the CSV header is not one line of comma-separated names")
    id_position = None
    if id_column is not None:
        if id_column not in names:
            raise BatchInputError(
                f"the CSV header has no id column {id_column!r}: it names {listed(names)}"
            )
        id_position = names.index(id_column)
    wanted = [column.name for column in signature.columns]
    if signature.named:
        missing = [name for name in wanted if name not in names]
        if missing:
            raise BatchInputError(
                f"the CSV header lacks the model's columns {listed(missing)}: it names "
                f"{listed(names)}; the model takes {listed(wanted)}"
            )
        positions = [names.index(name) for name in wanted]
    else:
        positions = [index for index in range(len(names)) if index != id_position]
        if len(positions) != len(wanted):
            raise BatchInputError(
                f"the model was fitted without column names and takes {len(wanted)} values a "
                f"row, in its order; the CSV has {len(positions)} columns besides its id column"
            )
    return ColumnMap(signature, positions, id_position, len(names))


def check_input_columns(
    store: ObjectStore,
    key: str,
    format: BatchFormat,
    manifest: ModelManifest,
    id_column: str | None,
) -> None:
    """Refuse, before a job starts, a CSV whose header cannot feed the model (a JSON line's
    columns are its own: a line that lacks them goes to the errors file)."""
    signature = batch_signature(manifest)
    if format is BatchFormat.CSV:
        csv_columns(read_header(store, key)[0], signature, id_column)


@dataclass
class _Rows:
    """A part's rows that fit, column by column, and those set aside."""

    positions: Any = field(default_factory=list)  # a list of ints; a numpy range when plain
    ids: list[Any] = field(default_factory=list)
    columns: dict[str, list[Any]] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)


def score_part(
    job: BatchJob,
    part: InputPart,
    manifest: ModelManifest,
    predictors: Any,
    source: ObjectStore,
    sink: ObjectStore,
    output_prefix: str,
) -> PartResult:
    """Score a part's rows with the loaded version and write its output and errors files.
    Writing the same part again writes the same bytes under the same keys."""
    signature = batch_signature(manifest)
    data = source.get_range(part.key, part.start, part.end)
    held = data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)
    if held != part.rows:
        raise BatchInputError(
            f"{part.key} changed while the job ran: part {part.part} held {part.rows} rows "
            f"when it was planned and holds {held} now; submit the job again"
        )
    if job.format is BatchFormat.CSV:
        header, _ = read_header(source, part.key)
        try:
            mapping = csv_columns(header, signature, job.id_column)
        except BatchInputError as exc:  # another object's header than the one submit checked
            mapping = None
            reason = f"{part.key}: {exc.message}"
            rows = _Rows(errors=[RowError(position=part.first_row + index, reason=reason)
                                 for index in range(part.rows)])  # fmt: skip
        if mapping is not None:
            rows = _plain_csv_rows(data, part, mapping) or _csv_rows(
                _lines(data), part.first_row, mapping
            )
    else:
        rows = _json_rows(_lines(data), part.first_row, signature, job.id_column)
    predictions, scores = _predict(rows, manifest, predictors, job.probabilities)
    errors = sorted(rows.errors, key=lambda error: error.position)
    key_name = job.id_column or POSITION
    keys = rows.ids if job.id_column else rows.positions
    plain = job.format is BatchFormat.CSV and scores is None
    body = _plain_csv_output(key_name, keys, predictions) if plain else None
    if body is None:
        keys = keys.tolist() if isinstance(keys, numpy.ndarray) else keys
        answers = json_values(predictions)
        probabilities = probabilities_per_row(scores) if scores is not None else None
        if job.format is BatchFormat.CSV:
            body = _csv_output(key_name, keys, answers, probabilities, manifest)
        else:
            body = _json_output(key_name, keys, answers, probabilities)
    output_key = output_prefix + output_name(part.part, job.format)
    errors_key = output_prefix + errors_name(part.part)
    sink.put(output_key, body)
    sink.put(errors_key, b"".join(_json_line(error.model_dump()) for error in errors))
    return PartResult(
        part=part.part,
        rows_read=part.rows,
        rows_scored=len(predictions),
        rows_failed=len(errors),
        output=output_key,
        errors=errors_key,
        first_errors=errors[:MAX_ERRORS_SHOWN],
    )


def _lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        lines.pop()
    return lines


def _decoded(line: bytes) -> str | None:
    try:
        return line.decode("utf-8").removesuffix("\r")
    except UnicodeDecodeError:
        return None


def _csv_fields(line: str) -> list[str] | None:
    if '"' not in line:
        return line.split(",")
    try:
        fields = list(csv.reader([line], strict=True))
    except csv.Error:
        return None
    return fields[0] if len(fields) == 1 else None


def _plain_csv_rows(data: bytes, part: InputPart, mapping: ColumnMap) -> "_Rows | None":
    """A part's rows read by pandas' C parser, column by column, when its text is plain: no
    quotes, no non-finite number, no lone carriage return, every line with the header's number
    of fields. None sends the part to the row by row read, which names each mistake.

    pandas 3 reads a number to the nearest double, as Python's float and the JSON parser do
    (its float_precision argument is deprecated; tests/unit/test_batch_scoring.py checks its
    default on numbers hard to round); an empty field is a
    missing value. A value that does not fit its column (text in a column of numbers) is left
    to the row by row read too."""
    if not data or b'"' in data or not _finite_numbers_only(data):
        return None
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return None  # a lone carriage return, which pandas would take for a line break
    width = mapping.width or 0
    first_line = data[: data.find(b"\n")] if b"\n" in data else data
    if data.count(b",") != part.rows * (width - 1) or first_line.count(b",") != width - 1:
        # A line with fewer fields than the header names: pandas would take the missing ones
        # for missing values; and the first line's extra ones for more columns (a later line
        # with extra fields is pandas' own error, below, and with as many commas in all, a
        # line with extra fields is the only way for another to have fewer).
        return None
    import pandas

    assert mapping.positions is not None
    signature = mapping.signature
    numbers = {
        position
        for column, position in zip(signature.columns, mapping.positions, strict=True)
        if column.kind is ColumnKind.NUMBER
    }
    if mapping.id_position in numbers:
        return None  # the id as written, not as the number pandas would read of it
    dtypes = {
        index: ("float64" if index in numbers else object) for index in range(mapping.width or 0)
    }
    try:
        frame = pandas.read_csv(
            io.BytesIO(data),
            header=None,
            dtype=dtypes,
            keep_default_na=False,
            na_values=[""],
            engine="c",
            on_bad_lines="error",
        )
    except (ValueError, pandas.errors.ParserError):
        return None
    if len(frame) != part.rows or frame.shape[1] != width:
        return None
    for position in numbers:  # a number too large for a double: pandas reads it infinite
        if numpy.isinf(frame[position].to_numpy(dtype=numpy.float64)).any():
            return None
    rows = _Rows(positions=numpy.arange(part.first_row, part.first_row + part.rows))
    if mapping.id_position is not None:  # as written; an empty id is an empty text
        rows.ids = frame[mapping.id_position].fillna("").tolist()
    failed: dict[int, str] = {}
    for column, position in zip(signature.columns, mapping.positions, strict=True):
        series = frame[position]
        missing = series.isna().to_numpy()
        if column.kind is ColumnKind.BOOLEAN:
            return None  # true/false spelled as the row by row read accepts them
        if column.kind is ColumnKind.NUMBER and column.missing is MissingValue.NAN:
            # NaN marks a missing number, as the model saw it (registry.inputs takes the array)
            rows.columns[column.name] = series.to_numpy(dtype=numpy.float64)
            if not column.nullable:
                for index in numpy.flatnonzero(missing).tolist():
                    failed.setdefault(index, _NEEDED.format(column.name))
            continue
        values = series.tolist()
        if missing.any():
            for index in numpy.flatnonzero(missing).tolist():
                values[index] = None
                if not column.nullable:
                    failed.setdefault(index, _NEEDED.format(column.name))
        rows.columns[column.name] = values
    _set_aside(rows, failed)
    return rows


def _finite_numbers_only(data: bytes) -> bool:
    """No text pandas' float parser would read as a non-finite number (nan, inf, infinity, in
    any case); a letter n or i is rare in numbers, so the case-folded search is rare too."""
    if not any(letter in data for letter in (b"n", b"N", b"i", b"I")):
        return True
    lowered = data.lower()
    return b"nan" not in lowered and b"inf" not in lowered


def _csv_rows(lines: list[bytes], first_row: int, mapping: ColumnMap) -> _Rows:
    rows = _Rows()
    kept: list[list[str]] = []
    for index, raw in enumerate(lines):
        position = first_row + index
        text = _decoded(raw)
        if text is None:
            rows.errors.append(RowError(position=position, reason="the line is not UTF-8 text"))
            continue
        fields = _csv_fields(text) if text else None
        if fields is None:
            reason = "an empty line" if not text else "the line is not one CSV row (open quote?)"
            rows.errors.append(RowError(position=position, reason=reason))
            continue
        if len(fields) != mapping.width:
            rows.errors.append(
                RowError(
                    position=position,
                    reason=f"the line has {len(fields)} values; the header names {mapping.width}",
                )
            )
            continue
        rows.positions.append(position)
        kept.append(fields)
    assert mapping.positions is not None
    by_column = list(zip(*kept, strict=True)) if kept else [()] * (mapping.width or 0)
    if mapping.id_position is not None:
        rows.ids = list(by_column[mapping.id_position])
    failed: dict[int, str] = {}
    for column, position in zip(mapping.signature.columns, mapping.positions, strict=True):
        values, errors = _typed(by_column[position], column)
        rows.columns[column.name] = values
        for index, reason in errors.items():
            failed.setdefault(index, reason)
    _set_aside(rows, failed)
    return rows


def _typed(texts: Sequence[str], column: InputColumn) -> tuple[list[Any], dict[int, str]]:
    """A CSV column's texts as the values JSON would carry (None: missing), and the rows whose
    text does not fit the column, with why. An empty field is a missing value, as pandas has it."""
    errors: dict[int, str] = {}
    if column.kind is ColumnKind.NUMBER:
        try:
            numbers = [float(text) for text in texts]
            if all(math.isfinite(number) for number in numbers):
                return numbers, errors
        except ValueError:
            pass
    values: list[Any] = []
    for index, text in enumerate(texts):
        value: Any = None
        if text == "":
            if not column.nullable:
                errors[index] = (
                    f"column {column.name!r}: a value is needed (the model cannot take a "
                    "missing value here)"
                )
        elif column.kind is ColumnKind.NUMBER:
            try:
                value = float(text)
            except ValueError:
                errors[index] = f"column {column.name!r}: expected a number, got {shown(text)}"
            else:
                if not math.isfinite(value):
                    errors[index] = f"column {column.name!r}: expected a finite number, got {text}"
        elif column.kind is ColumnKind.BOOLEAN:
            value = _BOOLEANS.get(text.lower())
            if value is None:
                errors[index] = f"column {column.name!r}: expected true or false, got {shown(text)}"
        else:
            value = text
        values.append(value)
    return values, errors


def _json_rows(
    lines: list[bytes], first_row: int, signature: InputSignature, id_column: str | None
) -> _Rows:
    rows = _Rows()
    kept: list[list[Any]] = []
    for index, raw in enumerate(lines):
        position = first_row + index
        try:
            row_id, values = _json_values(json.loads(raw), signature, id_column)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            rows.errors.append(RowError(position=position, reason="the line is not JSON"))
            continue
        except InvalidInputError as exc:
            rows.errors.append(RowError(position=position, reason=exc.message))
            continue
        rows.positions.append(position)
        rows.ids.append(row_id)
        kept.append(values)
    names = [column.name for column in signature.columns]
    failed: dict[int, str] = {}
    try:  # every value checked at a column's pace; row by row only to name what is wrong
        check_rows(RequestRows(kept, in_model_order=True), signature)
    except InvalidInputError:
        for index, values in enumerate(kept):
            try:
                check_rows(RequestRows([values], in_model_order=True), signature)
            except InvalidInputError as exc:
                failed[index] = exc.message.removeprefix("row 0, ")
    by_column = list(zip(*kept, strict=True)) if kept else [()] * len(names)
    rows.columns = {name: list(by_column[index]) for index, name in enumerate(names)}
    _set_aside(rows, failed)
    return rows


def _json_values(
    value: Any, signature: InputSignature, id_column: str | None
) -> tuple[Any, list[Any]]:
    """A JSON line's id and its values in the model's order. Keys the model does not take
    are passed over (the id column among them), as a CSV's other columns are."""
    if isinstance(value, dict):
        if not signature.named:
            raise InvalidInputError(
                "the row is an object, and the model was fitted without column names: write "
                "each row as a list of values"
            )
        if id_column is not None and id_column not in value:
            raise InvalidInputError(f"the row has no id column {id_column!r}")
        missing = [column.name for column in signature.columns if column.name not in value]
        if missing:
            raise InvalidInputError(f"the row lacks the model's columns {listed(missing)}")
        row_id = value.get(id_column) if id_column is not None else None
        return row_id, [value[column.name] for column in signature.columns]
    if isinstance(value, list):
        if id_column is not None:
            raise InvalidInputError(
                f"the row is a list, which has no id column {id_column!r}: write each row as "
                "an object of column values"
            )
        if len(value) != len(signature.columns):
            raise InvalidInputError(
                f"the row has {len(value)} values; the model takes {len(signature.columns)}"
            )
        return None, value
    raise InvalidInputError(
        f"the row is {shown(value)}: write each row as an object of column values or a list"
    )


def _set_aside(rows: _Rows, failed: dict[int, str]) -> None:
    """Move the rows at these indexes (of rows kept so far) to the errors."""
    if not failed:
        return
    if isinstance(rows.positions, numpy.ndarray):
        rows.positions = rows.positions.tolist()
    keep = [index for index in range(len(rows.positions)) if index not in failed]
    for index in sorted(failed):
        rows.errors.append(RowError(position=rows.positions[index], reason=failed[index]))
    rows.positions = [rows.positions[index] for index in keep]
    if rows.ids:
        rows.ids = [rows.ids[index] for index in keep]
    rows.columns = {
        name: numpy.take(values, keep)
        if isinstance(values, numpy.ndarray)
        else [values[index] for index in keep]
        for name, values in rows.columns.items()
    }


def _predict(
    rows: _Rows, manifest: ModelManifest, predictors: Any, probabilities: bool
) -> tuple[Any, Any | None]:
    """The model's answers (its arrays) on the rows that fit; a row the model itself refuses
    (a category it never saw) is set aside with the reason, and the others are answered."""
    if not len(rows.positions):
        return numpy.empty(0), numpy.empty((0, 0)) if probabilities else None
    signature = batch_signature(manifest)
    features = input_of_columns(rows.columns, signature)
    try:
        predictions = predictors.predict(features)
        scores = predictors.predict_proba(features) if probabilities else None
    except MemoryError:
        raise
    except Exception:
        failed = _refused_rows(rows, signature, predictors)
        if not failed:  # refused together, answered one by one: not the rows' fault
            raise
        _set_aside(rows, failed)
        return _predict(rows, manifest, predictors, probabilities)
    return predictions, scores


def _refused_rows(rows: _Rows, signature: InputSignature, predictors: Any) -> dict[int, str]:
    """The rows the model raises on, one by one, with the reason (slow: only after a refusal)."""
    failed: dict[int, str] = {}
    names = [column.name for column in signature.columns]
    for index in range(len(rows.positions)):
        single = {name: [rows.columns[name][index]] for name in names}
        try:
            predictors.predict(input_of_columns(single, signature))
        except MemoryError:
            raise
        except Exception as exc:
            request = RequestRows([[single[name][0] for name in names]], in_model_order=True)
            explained = explain_rejection(request, signature)
            failed[index] = (
                explained.removeprefix("row 0, ")
                if explained
                else f"the model could not predict on the row (it raised {type(exc).__name__})"
            )
    return failed


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _csv_output(
    key_name: str,
    keys: list[Any],
    predictions: list[Any],
    probabilities: list[Any] | None,
    manifest: ModelManifest,
) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    header = [key_name, "prediction"]
    per_class = probabilities is not None and manifest.classes is not None
    if probabilities is not None:
        if per_class:
            assert manifest.classes is not None
            header += [f"probability_{_cell(label)}" for label in manifest.classes]
        else:
            header.append("probabilities")
    writer.writerow(header)
    columns = [_texts(keys), _texts(predictions)]
    if probabilities is not None:
        if per_class:
            columns += [_texts(list(scores)) for scores in zip(*probabilities, strict=True)]
        else:
            columns.append([_cell(scores) for scores in probabilities])
    writer.writerows(zip(*columns, strict=True))
    return text.getvalue().encode()


def _plain_csv_output(key_name: str, keys: Any, predictions: Any) -> bytes | None:
    """What _csv_output writes for whole-number keys (positions) and a classifier's few
    labels, every line's bytes laid out by numpy (a part's 100,000 lines in a few ms, where
    the csv module takes 40); None for anything else (ids as text, floats, probabilities)."""
    keys = numpy.asarray(keys)
    predictions = numpy.asarray(predictions)
    if keys.dtype.kind not in "iu" or predictions.ndim != 1 or keys.shape != predictions.shape:
        return None
    if keys.size == 0 or keys.min() < 0:
        return None
    sampled, _ = _label_codes(predictions[:64])  # a regressor's many values: not sorted
    if sampled is None or len(sampled) > 16:
        return None
    labels, codes = _label_codes(predictions)
    if labels is None:
        return None
    texts = [_cell(label).encode() for label in json_values(labels)]
    if len(texts) > 64 or any(set(text) & _QUOTED for text in texts):
        return None
    digits, digit_count = _decimal_digits(keys.astype(numpy.int64))
    label_width = max(1, *map(len, texts))
    label_bytes = numpy.zeros((len(texts), label_width), dtype=numpy.uint8)
    for index, text in enumerate(texts):
        label_bytes[index, : len(text)] = numpy.frombuffer(text, dtype=numpy.uint8)
    label_length = numpy.array([len(text) for text in texts])[codes]
    width = digits.shape[1]
    line = numpy.empty((keys.size, width + label_width + 2), dtype=numpy.uint8)
    line[:, :width] = digits
    line[:, width] = COMMA
    line[:, width + 1 : -1] = label_bytes[codes]
    line[:, -1] = NEWLINE
    kept = numpy.ones(line.shape, dtype=bool)  # the bytes of each line; the rest is padding
    kept[:, :width] = numpy.arange(width) >= (width - digit_count)[:, None]
    kept[:, width + 1 : -1] = numpy.arange(label_width) < label_length[:, None]
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow([key_name, "prediction"])
    return header.getvalue().encode() + line[kept].tobytes()


_QUOTED = set(b',"\r\n')  # a cell holding one of these is quoted by the csv module


def _label_codes(predictions: Any) -> tuple[Any, Any]:
    """The distinct labels and each row's index among them (None: labels that do not sort).
    Whole-number labels a few apart are indexed by subtraction, without sorting; numbers with
    a fraction are told apart by their bits, as their texts are."""
    if predictions.dtype.kind in "iu":
        low, high = int(predictions.min()), int(predictions.max())
        if high - low < 64:
            labels = numpy.arange(low, high + 1).astype(predictions.dtype)
            return labels, (predictions - low).astype(numpy.intp)
    if predictions.dtype.kind == "f":  # by their bits: -0.0 is written apart from 0.0
        bits, codes = numpy.unique(
            predictions.astype(numpy.float64).view(numpy.int64), return_inverse=True
        )
        return bits.view(numpy.float64), codes
    try:
        return numpy.unique(predictions, return_inverse=True)
    except TypeError:  # labels of several types
        return None, None


def _decimal_digits(values: Any) -> tuple[Any, Any]:
    """Non-negative whole numbers as ASCII digits, right-aligned in a matrix, and how many
    digits each has (divided as uint32 when they fit, which numpy does twice as fast)."""
    largest = int(values.max())
    width = len(str(largest))
    digits = numpy.empty((values.size, width), dtype=numpy.uint8)
    rest = values.astype(numpy.uint32 if largest < 2**32 else numpy.uint64)
    for column in range(width - 1, -1, -1):
        quotient = rest // 10
        digits[:, column] = rest - quotient * 10 + ord("0")
        rest = quotient
    count = numpy.ones(values.size, dtype=numpy.int64)
    for power in range(1, width):
        count += values >= 10**power
    return digits, count


def _texts(values: list[Any]) -> list[str]:
    """A column's cells as _cell writes them, a column of one type at a time; a column of
    few values (a classifier's labels) looks each value's text up."""
    kinds = set(map(type, values))
    if kinds <= {float}:
        return list(map(repr, values))
    if len(kinds) == 1 and kinds <= {int, str, bool} and len(values) > 64:
        distinct = set(values[:64])
        if len(distinct) <= 16:
            texts = {value: _cell(value) for value in set(values)}
            if len(texts) <= 16:
                return list(map(texts.__getitem__, values))
    if kinds <= {int, str}:
        return list(map(str, values))
    return list(map(_cell, values))


def _json_output(
    key_name: str, keys: list[Any], predictions: list[Any], probabilities: list[Any] | None
) -> bytes:
    lines = []
    for index, (key, prediction) in enumerate(zip(keys, predictions, strict=True)):
        record: dict[str, Any] = {key_name: key, "prediction": prediction}
        if probabilities is not None:
            record["probabilities"] = probabilities[index]
        lines.append(_json_line(record))
    return b"".join(lines)


def _json_line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
