"""model-registry: register, inspect, edit, convert, alias, archive, restore, delete, classify,
batch."""

import argparse
import csv
import io
import json
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from registry.client.monitor import MonitorError, html_page, monitor, read_reference, table_text
from registry.client.registry_client import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_CONNECTIONS,
    DEFAULT_INLINE_LIMIT,
    DEFAULT_URL,
    ApiError,
    EncodedRows,
    RegistryClient,
    captured_table,
    encoded_columns,
)
from registry.client.shadow import ShadowReportError, shadow_report


def _pairs(values: list[str], kind: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, separator, item = value.partition("=")
        if not separator or not key:
            parser.error(f"--{kind} takes key=value, got {value!r}")
        pairs[key] = item
    return pairs


def _capture_share(text: str) -> float | str:
    if text == "default":
        return text
    try:
        share = float(text)
    except ValueError:
        share = -1.0
    if not 0 <= share <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: write a percent from 0 to 100, or default")
    return share


def _alias_target(text: str) -> tuple[int, int | None]:
    """VERSION, or VERSION=WEIGHT."""
    version, separator, weight = text.partition("=")
    try:
        return int(version), int(weight) if separator else None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write a version (7), or versions with their weights (7=90 8=10)"
        ) from None


def _alias_version(
    targets: list[tuple[int, int | None]], parser: argparse.ArgumentParser
) -> int | dict[int, int]:
    if len(targets) == 1 and targets[0][1] is None:
        return targets[0][0]
    weights = {version: weight for version, weight in targets if weight is not None}
    if len(weights) != len(targets):
        parser.error("give every version a weight to split an alias: 7=90 8=10")
    return weights


def _metrics(values: list[str], parser: argparse.ArgumentParser) -> dict[str, float]:
    metrics = {}
    for key, value in _pairs(values, "metric", parser).items():
        try:
            metrics[key] = float(value)
        except ValueError:
            parser.error(f"--metric {key} needs a number, got {value!r}")
    return metrics


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max([len(column), *(len(line[index]) for line in cells)])
        for index, column in enumerate(columns)
    ]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{key}={item}" for key, item in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def _no_progress(sent: int, total: int) -> None:
    """--json prints only the answer."""


def _readable(command: str, answer: Any) -> str:
    if command == "list":
        return _table(answer["models"], ["name", "latest_version", "version_count", "aliases"])
    if command == "show" and "versions" in answer:
        head = (
            f"{answer['name']}: {answer['version_count']} versions, "
            f"latest active {answer['latest_version']}, aliases {_cell(answer['aliases'])}"
        )
        columns = ["version", "status", "created_at", "aliases", "sha256", "description"]
        rows = [{**row, "sha256": row["sha256"][:12]} for row in answer["versions"]]
        return head + "\n" + _table(rows, columns)
    if command == "classify" and "output" in answer:
        return (
            f"wrote {answer['rows']:,} predictions of {answer['model']} version "
            f"{answer['version']} to {answer['output']} (columns: {', '.join(answer['columns'])})"
        )
    if command == "classify":
        rows = list(output_records(answer))
        columns = list(rows[0]) if rows else ["row", "prediction"]
        return f"{answer['model']} version {answer['version']}\n" + _table(rows, columns)
    if command == "runtime check":
        return _checked_lines(answer)
    if command == "runtime lines":
        return _lines_in_use(answer["lines"])
    if command in ("batch", "batch-status"):
        return _batch_text(answer)
    if command == "monitor":
        page = f"\nwrote {answer['html']}" if answer.get("html") else ""
        return table_text(answer) + page
    if command == "shadow report":
        return _shadow_text(answer)
    if command == "capture" and "records" in answer:
        return _csv_text(captured_table(answer["records"])).rstrip("\n")
    if isinstance(answer, dict):
        if isinstance(answer.get("signature"), dict):
            answer = {**answer, "signature": _signature_text(answer["signature"])}
        width = max(map(len, answer), default=0)
        return "\n".join(f"{key.ljust(width)}  {_cell(value)}" for key, value in answer.items())
    return json.dumps(answer)


def _shadow_text(report: dict[str, Any]) -> str:
    primary = ", ".join(map(str, report["primary_versions"]))
    agreement = report["agreement"]
    lines = [
        f"{report['model']} {report['alias']}: shadow version {report['shadow']} against version "
        f"{primary} on {report['replayed']:,} captured rows"
        + (f" ({report['not_replayed']:,} not replayed)" if report["not_replayed"] else ""),
        f"agreement: {agreement:.1%}" if agreement is not None else "agreement: no rows",
    ]
    if "confusion" in report:
        confusion = _table(report["confusion"], ["primary", "shadow", "rows"])
        lines += ["", "primary -> shadow:", confusion]
    elif report.get("differences"):
        spread = ", ".join(f"{key} {value:.6g}" for key, value in report["differences"].items())
        lines += ["", f"shadow - primary: {spread}"]
    if report["most_different"]:
        columns = list(dict.fromkeys(key for row in report["most_different"] for key in row))
        lines += ["", "rows that differ most:", _table(report["most_different"], columns)]
    lines.append(f"(batch job {report['batch_job']})")
    return "\n".join(lines)


def _csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV with a header: every column any row has, in the order they first appear."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: _csv_value(value) for key, value in row.items()} for row in rows)
    return text.getvalue()


def _csv_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value


def _batch_text(job: dict[str, Any]) -> str:
    text = (
        f"job {job['job_id']}: {job['status']}, {job['model']} version {job['version']}\n"
        f"rows read {job['rows_read']:,}, scored {job['rows_scored']:,}, "
        f"failed {job['rows_failed']:,} ({job['parts_done']} of {job['parts']} parts)"
    )
    if job["status"] in ("SUBMITTED", "RUNNING"):
        text += f"\nnext: model-registry batch-status {job['job_id']} --wait"
    elif job["outputs"]:
        text += f"\npredictions in {job['output']} ({len(job['outputs'])} files, in input order)"
    for error in job["first_errors"]:
        text += f"\n  row {error['position']}: {error['reason']}"
    if job["rows_failed"] > len(job["first_errors"]):
        text += f"\nevery failed row and why: {job['output']}errors/"
    if job.get("reason"):
        text += f"\nreason: {job['reason']}"
    return text


def batch_progress(job: dict[str, Any]) -> None:
    """A progress line on a terminal: parts done of parts, rows scored."""
    if not sys.stderr.isatty():
        return
    parts, done = job["parts"], job["parts_done"]
    width = 30
    filled = width * done // parts if parts else 0
    bar = "#" * filled + "-" * (width - filled)
    end = "\n" if job["status"] in ("SUCCEEDED", "FAILED") else ""
    sys.stderr.write(f"\r[{bar}] {done}/{parts} parts, {job['rows_scored']:,} rows scored{end}")
    sys.stderr.flush()


def _checked_lines(answer: dict[str, Any]) -> str:
    line = answer["line"]
    checked = answer["versions"]
    if not checked:
        head = f"no active version is served by a line older than {line}: nothing to move"
    else:
        moved = sum(check["moved"] for check in checked)
        head = f"upgrade check against the {line} line: {moved} of {len(checked)} versions move\n"
        rows = [
            {**check, "model": check["name"], "moves": "yes" if check["moved"] else "no"}
            for check in checked
        ]
        head += _table(rows, ["model", "version", "line", "moves", "reason"])
    return head + "\n\n" + _lines_in_use(answer["lines"])


def _lines_in_use(lines: list[dict[str, Any]]) -> str:
    rows = [
        {
            "line": use["line"],
            "served": "yes" if use["served"] else "NO",
            "active_versions": [f"{ref['name']}:{ref['version']}" for ref in use["versions"]],
        }
        for use in lines
    ]
    text = "lines, and the active versions each serves\n" + _table(
        rows, ["line", "served", "active_versions"]
    )
    idle = [use["line"] for use in lines if use["served"] and not use["versions"]]
    stranded = [use["line"] for use in lines if not use["served"] and use["versions"]]
    if idle:
        text += f"\nno active version needs line {', '.join(idle)}: it can be removed"
    if stranded:
        text += (
            f"\nversions need line {', '.join(stranded)}, which is not served: deploy it "
            "again, or move them with `model-registry runtime check --line LINE`"
        )
    return text


def _signature_text(signature: dict[str, Any]) -> str:
    """'city: string (3 categories), age: number or null; named, needs a DataFrame'."""
    columns = []
    for column in signature["columns"]:
        text = f"{column['name']}: {column['kind']}"
        if column.get("categories") is not None:
            text += f" ({len(column['categories'])} categories)"
        columns.append(text + (" or null" if column.get("nullable") else ""))
    how = ["named"] if signature.get("named") else ["positional"]
    if signature.get("dataframe"):
        how.append("needs a DataFrame")
    return ", ".join(columns) + "; " + ", ".join(how)


def read_table(path: Path) -> tuple[list[str] | None, list[Any]]:
    """(the column names, the rows) of a CSV file, each row a list of values in the header's
    order; or (None, the rows) of JSON lines, each an object or a list, as written.

    A CSV column whose every filled cell is a number is read as numbers, one whose every
    filled cell is true or false as booleans, any other as strings; an empty cell is null.
    What spreadsheets and pandas write reads as written: a byte-order mark, CRLF line ends,
    quoted cells with commas or line breaks, and empty lines.
    """
    text = _text(path)
    if _is_json_lines(path, text):
        return None, [json.loads(line) for line in text.split("\n") if line.strip()]
    header, columns = _csv_columns(text)
    return header, list(zip(*columns, strict=True))  # tuples: JSON writes them as lists


def read_encoded(path: Path) -> EncodedRows:
    """The rows of a CSV file or JSON lines (read as read_table reads them), as the JSON text
    of each row, made column by column: what classify sends."""
    text = _text(path)
    if _is_json_lines(path, text):
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        for line in lines:
            json.loads(line)  # a line that is not JSON is the caller's to fix, not the API's
        return EncodedRows(None, lines)
    header, cells = _csv_cells(text)
    return encoded_columns(header, [_json_column(column) for column in cells])


def _text(path: Path) -> str:
    # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8-sig")
    return text.removeprefix("\ufeff")


def _is_json_lines(path: Path, text: str) -> bool:
    return path.suffix.lower() in (".jsonl", ".ndjson", ".json") or text.lstrip()[:1] in "{["


def _csv_columns(text: str) -> tuple[list[str], list[list[Any]]]:
    header, cells = _csv_cells(text)
    return header, [_typed_column(column) for column in cells]


def _csv_cells(text: str) -> tuple[list[str], list[tuple[str, ...]]]:
    """The header, and the cells column by column."""
    lines = csv.reader(io.StringIO(text, newline=""))
    header = next(lines, None)
    cells = [line for line in lines if line]  # an empty line is no row
    if not header or not cells:
        raise ValueError("no rows under the header: the first line names the columns")
    if set(map(len, cells)) != {len(header)}:
        index, line = next((i, line) for i, line in enumerate(cells) if len(line) != len(header))
        raise ValueError(
            f"row {index} has {len(line)} cells and the header names {len(header)} "
            f"columns ({', '.join(header)}): quote a cell that holds a comma"
        )
    return header, list(zip(*cells, strict=True))


def read_rows(path: Path) -> list[Any]:
    """The rows of a CSV file as objects of column values (see read_table), or JSON lines."""
    names, rows = read_table(path)
    if names is None:
        return rows
    return [dict(zip(names, row, strict=True)) for row in rows]


def _typed_column(cells: Sequence[str]) -> list[Any]:
    """The column's cells as one type: every distinct filled cell converted once."""
    distinct, values = _typed_distinct(cells)
    typed: dict[str, Any] = dict(zip(distinct, values, strict=True))
    typed[""] = None
    return list(map(typed.__getitem__, cells))


def _json_column(cells: Sequence[str]) -> list[str]:
    """The JSON text of each of the column's cells, typed as _typed_column types them. A
    number's text is its cell's when JSON reads that text as the same value (13.2, 1050),
    so the table's numbers are never written again."""
    distinct, values = _typed_distinct(cells)
    tokens: dict[str, str] = {"": "null"}
    for cell, value in zip(distinct, values, strict=True):
        if type(value) is int:
            tokens[cell] = cell if _JSON_INTEGER.fullmatch(cell) else str(value)
        elif type(value) is float:
            tokens[cell] = cell if _JSON_FLOAT.fullmatch(cell) else repr(value)
        else:
            tokens[cell] = json.dumps(value)
    return list(map(tokens.__getitem__, cells))


# JSON number texts that json.loads reads as an int, and as a float, exactly as int(text) and
# float(text) read them.
_JSON_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_JSON_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)")


def _typed_distinct(cells: Sequence[str]) -> tuple[list[str], list[Any]]:
    """The distinct filled cells, and their values as one type: integers, else finite
    numbers, else booleans (true or false, any case), else the strings."""
    distinct = list({cell for cell in cells if cell})
    for convert in (_integers, _finite_floats, _booleans):
        try:
            return distinct, convert(distinct)
        except ValueError:
            continue
    return distinct, list(distinct)


def _integers(cells: list[str]) -> list[int]:
    return list(map(int, cells))


def _finite_floats(cells: list[str]) -> list[float]:
    values = list(map(float, cells))
    if not all(map(math.isfinite, values)):  # "nan", "inf": text, as JSON has no such number
        raise ValueError("not finite")
    return values


def _booleans(cells: list[str]) -> list[bool]:
    lowered = [cell.lower() for cell in cells]
    if not set(lowered) <= {"true", "false"}:
        raise ValueError("not true or false")
    return [cell == "true" for cell in lowered]


def probability_columns(answer: dict[str, Any]) -> list[str]:
    """A column per class, named after it, as `predict_proba` reads in pandas
    (`DataFrame(model.predict_proba(X), columns=model.classes_)`); a multi-output model's
    are `OUTPUT:CLASS`. Prefixed `probability_` should a class be named row or prediction."""
    classes = answer.get("classes")
    if "probabilities" not in answer or classes is None:
        return []
    if classes and isinstance(classes[0], list):  # one list of classes per output
        names = [f"{output}:{label}" for output, labels in enumerate(classes) for label in labels]
    else:
        names = [str(label) for label in classes]
    if {"row", "prediction"} & set(names):
        names = [f"probability_{name}" for name in names]
    return names


def output_records(answer: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A flat record per row: row, prediction, then a probability per class."""
    columns = probability_columns(answer)
    probabilities = answer.get("probabilities") or []
    for index, prediction in enumerate(answer["predictions"]):
        record = {"row": index, "prediction": prediction}
        if columns:
            values = probabilities[index]
            if values and isinstance(values[0], list):
                values = [value for output in values for value in output]
            record.update(zip(columns, values, strict=True))
        yield record


def write_predictions(answer: dict[str, Any], output: Path) -> dict[str, Any]:
    """Write the predictions to a CSV file (.csv) or JSON lines; returns what was written."""
    columns = ["row", "prediction", *probability_columns(answer)]
    with output.open("w", encoding="utf-8", newline="") as file:
        if output.suffix.lower() == ".csv":
            writer = csv.writer(file)
            writer.writerow(columns)
            for record in output_records(answer):
                writer.writerow([_csv_cell(value) for value in record.values()])
        else:
            for record in output_records(answer):
                file.write(json.dumps(record) + "\n")
    return {
        "model": answer["model"],
        "version": answer["version"],
        "rows": len(answer["predictions"]),
        "output": str(output),
        "columns": columns,
    }


def _csv_cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list) else value


def _global_flags(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The flags every command takes, before or after its name. The top parser holds the
    defaults; each command's parser, defaults suppressed, overrides them only when given."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--url",
        default=default(os.environ.get("MODEL_REGISTRY_URL", DEFAULT_URL)),
        help="the API's base URL: `make run`'s http://127.0.0.1:3000, or the stack's ApiUrl "
        "output (default: $MODEL_REGISTRY_URL, else the local server)",
    )
    parser.add_argument(
        "--api-key",
        default=default(os.environ.get("MODEL_REGISTRY_API_KEY")),
        metavar="KEY",
        help="the API key the predict routes take when deployed (README, 'Deploy' shows how to "
        "read it; default: $MODEL_REGISTRY_API_KEY)",
    )
    parser.add_argument(
        "--sign",
        action=argparse.BooleanOptionalAction,
        default=default(None),
        help="SigV4-sign /models requests with your AWS credentials (default: only for "
        "execute-api URLs)",
    )
    parser.add_argument(
        "--region", default=default(None), help="AWS region for signing (default: from the URL)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the API's JSON answer (errors too, on stderr), for scripts",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-registry", description=__doc__)
    _global_flags(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_flags(common, defaults=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        help: str,
        under: "argparse._SubParsersAction[argparse.ArgumentParser]" = commands,
    ) -> argparse.ArgumentParser:
        return under.add_parser(name, parents=[common], help=help, description=help)

    def name_and_version(subparser: argparse.ArgumentParser, what: str) -> None:
        subparser.add_argument("name", help="the model's name (`model-registry list`)")
        subparser.add_argument(
            "version", type=int, help=f"the version to {what} (`model-registry show NAME`)"
        )

    register = command("register", "register a .skops or joblib file as a new version")
    register.add_argument(
        "path", type=Path, help="a file of skops.io.dump (.skops) or joblib.dump (.joblib)"
    )
    register.add_argument("--name", required=True, help="the model's name, e.g. churn")
    register.add_argument("--description", default="", help="what this version is, in words")
    register.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE", help="a tag; repeat for more"
    )
    register.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="KEY=NUMBER",
        help="a metric, e.g. auc=0.91; repeat for more",
    )
    register.add_argument(
        "--input-example",
        type=Path,
        metavar="ROWS",
        help="a CSV or JSON lines file of a few rows (at most 100) the model must predict on",
    )
    register.add_argument(
        "--reference",
        type=Path,
        metavar="ROWS",
        help="a CSV or JSON lines file of the inputs it was trained on (up to 20,000 rows), "
        "kept with the version for `model-registry monitor`",
    )
    register.add_argument(
        "--runtime",
        metavar="VERSION",
        help="the scikit-learn the file was saved with, e.g. 1.8.0, for a file that does not "
        "record it: it picks the runtime line that validates the file (default: the "
        "scikit-learn installed here)",
    )
    register.add_argument(
        "--inline-limit",
        type=int,
        default=DEFAULT_INLINE_LIMIT,
        metavar="BYTES",
        help="larger artifacts go through a presigned upload (default: %(default)s bytes)",
    )

    command("list", "every model with its latest version and aliases")

    show = command("show", "a model's versions, or one version's manifest")
    show.add_argument("name", help="the model's name (`model-registry list`)")
    show.add_argument("--version", type=int, help="one version's manifest, with its signature")

    alias = command("alias", "set or remove an alias")
    alias_commands = alias.add_subparsers(dest="alias_command", required=True, metavar="ACTION")
    alias_set = command(
        "set", "point an alias at a version, or split it: 7=90 8=10", alias_commands
    )
    alias_set.add_argument("name", help="the model's name")
    alias_set.add_argument("alias", help="the alias, e.g. production")
    alias_set.add_argument(
        "version",
        nargs="+",
        type=_alias_target,
        help="the version it serves, or 2 to 4 VERSION=WEIGHT pairs that split its traffic "
        "(each request by its x-routing-key header, else its request id)",
    )
    alias_set.add_argument(
        "--salt", help="with weights: a new salt reshuffles which key goes to which version"
    )
    alias_set.add_argument(
        "--shadow",
        type=int,
        metavar="VERSION",
        help="a version that never answers, for `model-registry shadow report` (left out: none)",
    )
    alias_rm = command("rm", "remove an alias", alias_commands)
    alias_rm.add_argument("name", help="the model's name")
    alias_rm.add_argument("alias", help="the alias to remove")

    edit = command("edit", "change a version's description, tags or metrics")
    name_and_version(edit, "edit")
    edit.add_argument("--description", help="the new description")
    edit.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE", help="set a tag; repeatable"
    )
    edit.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="KEY=NUMBER",
        help="set a metric; repeatable",
    )
    edit.add_argument(
        "--remove-tag", action="append", default=[], metavar="KEY", help="remove a tag"
    )
    edit.add_argument(
        "--remove-metric", action="append", default=[], metavar="KEY", help="remove a metric"
    )

    convert = command(
        "convert", "give joblib versions registered before predict stopped unpickling a skops copy"
    )
    convert.add_argument("name", help="the model's name")
    convert.add_argument(
        "versions", type=int, nargs="*", help="the versions to convert (default: every version)"
    )

    name_and_version(command("archive", "archive a version: no longer served"), "archive")
    name_and_version(command("restore", "bring an archived version back"), "restore")

    delete = command("delete", "delete a model: every version, alias and object")
    delete.add_argument("name", help="the model's name")
    delete.add_argument(
        "--force", action="store_true", help="delete it even while aliases point into it"
    )

    runtime = command(
        "runtime", "the runtime lines served (alone), or check versions against a newer line"
    )
    runtime_commands = runtime.add_subparsers(dest="runtime_command", metavar="ACTION")
    check = command(
        "check",
        "re-validate the active versions of older lines on a newer line, and move there those "
        "that answer their check rows the same, bit for bit",
        runtime_commands,
    )
    check.add_argument("--line", required=True, help="the line to move to, e.g. 1.9")
    check.add_argument(
        "--model",
        action="append",
        metavar="NAME",
        help="check this model's versions only; repeat for more (default: every model)",
    )
    command("lines", "every line, and the active versions it still serves", runtime_commands)

    batch = command(
        "batch",
        "score every row of a file or an S3 prefix with one version, into files of predictions",
    )
    batch.add_argument("name", help="the model's name (`model-registry list`)")
    batch.add_argument(
        "--input",
        required=True,
        help="s3://bucket/key (or a prefix), or against `make run` a local file or folder: a "
        "CSV with a header row, or JSON lines",
    )
    batch.add_argument(
        "--output", required=True, help="where the predictions go: s3://bucket/prefix/ or a folder"
    )
    batch.add_argument(
        "--format", choices=["csv", "jsonl"], help="the input's (default: from its name)"
    )
    batch_pin = batch.add_mutually_exclusive_group()
    batch_pin.add_argument("--version", type=int, help="this version (default: the latest)")
    batch_pin.add_argument("--alias", help="the version this alias points at now")
    batch.add_argument(
        "--id-column", help="a column of the input each output row carries (default: position)"
    )
    batch.add_argument("--probabilities", action="store_true", help="add class probabilities")
    batch.add_argument("--job-id", help="your id for the job: the same id runs it again")
    batch.add_argument("--wait", action="store_true", help="wait until the job ends")
    batch_status = command("batch-status", "a batch job's status, counts and first errors")
    batch_status.add_argument("job_id", help="the id `model-registry batch` printed")
    batch_status.add_argument("--wait", action="store_true", help="wait until the job ends")

    shadow = command("shadow", "what an alias's shadow version would have answered")
    shadow_commands = shadow.add_subparsers(dest="shadow_command", required=True, metavar="ACTION")
    report = command(
        "report",
        "replay the alias's captured rows through its shadow (a batch job) and compare",
        shadow_commands,
    )
    report.add_argument("name", help="the model's name")
    report.add_argument("alias", help="the alias whose shadow to report on, e.g. production")
    report.add_argument("--since", help="captured from this time on (ISO 8601; UTC without a zone)")
    report.add_argument(
        "--work-dir",
        type=Path,
        help="where the replayed rows and the shadow's answers are written against a local "
        "server (default: a temporary folder)",
    )
    report.add_argument(
        "--input-uri",
        help="against a deployed stack: an s3:// prefix inside its BatchInputPrefix for the "
        "replayed rows (with --output-uri; needs the aws extra)",
    )
    report.add_argument(
        "--output-uri", help="against a deployed stack: an s3:// prefix inside BatchOutputPrefix"
    )

    monitor_command = command(
        "monitor",
        "captured inputs against the version's reference rows (PSI, categories, missing "
        "values) and its predictions by hour",
    )
    monitor_command.add_argument("name", help="the model's name")
    monitor_command.add_argument(
        "--version", type=int, help="this version (default: the one that answered last)"
    )
    monitor_command.add_argument("--since", help="captured from this time on (ISO 8601)")
    monitor_command.add_argument(
        "--reference",
        metavar="FILE",
        help="reference rows, CSV or JSON lines (default: those kept at registration, "
        "`register --reference`, else the version's input_example)",
    )
    monitor_command.add_argument(
        "--html", type=Path, metavar="FILE", help="also write one self-contained page with charts"
    )

    capture = command(
        "capture",
        "captured predictions as CSV (what each row asked and was answered); "
        "--sample-percent sets how many are captured",
    )
    capture.add_argument("name", help="the model's name")
    capture.add_argument("--version", type=int, help="this version's only")
    capture.add_argument(
        "--since", help="from this time on (ISO 8601, e.g. 2026-12-04T09:00; without a zone, UTC)"
    )
    capture.add_argument(
        "--sample-percent",
        type=_capture_share,
        metavar="P",
        help="capture P percent of the model's predict requests from now on (0 to 100; "
        "'default': the deployment's CaptureSamplePercent)",
    )
    capture.add_argument(
        "--output", type=Path, metavar="FILE", help="write the CSV here instead of printing it"
    )

    classify = command("classify", "predict with a model")
    classify.add_argument("name", help="the model's name (`model-registry list`)")
    pin = classify.add_mutually_exclusive_group()
    pin.add_argument("--version", type=int, help="this version (default: latest, or `default`)")
    pin.add_argument("--alias", help="the version this alias points at, e.g. production")
    rows = classify.add_mutually_exclusive_group(required=True)
    rows.add_argument("--instances", help='rows as JSON, e.g. "[[0.5, 0.2]]"')
    rows.add_argument(
        "--input",
        type=Path,
        metavar="FILE",
        help="a CSV file with a header row, or JSON lines (.jsonl: one row a line); - reads stdin",
    )
    classify.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write the predictions here (.csv, else JSON lines) and print a one-line summary",
    )
    classify.add_argument(
        "--probabilities",
        action="store_true",
        help="add the class probabilities: a column per class, named after it",
    )
    classify.add_argument(
        "--routing-key",
        metavar="KEY",
        help="which of a weighted alias's versions answers: the same key, the same version "
        "(default: the request's id)",
    )
    classify.add_argument(
        "--batch-rows",
        type=int,
        default=DEFAULT_BATCH_ROWS,
        metavar="N",
        help="the most rows one request carries (default: %(default)s)",
    )
    classify.add_argument(
        "--connections",
        type=int,
        default=DEFAULT_CONNECTIONS,
        metavar="N",
        help="requests in flight at once (default: %(default)s)",
    )
    return parser


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    client = RegistryClient(
        args.url,
        api_key=args.api_key,
        sign=args.sign,
        region=args.region,
        inline_limit=getattr(args, "inline_limit", DEFAULT_INLINE_LIMIT),
    )
    match args.command:
        case "register":
            try:
                artifact = args.path.read_bytes()
            except OSError as exc:
                parser.error(f"cannot read {args.path}: {exc.strerror}")
            example, reference = None, None
            for option, path in (("example", args.input_example), ("reference", args.reference)):
                if path is None:
                    continue
                try:
                    read = read_rows(path)
                except (OSError, ValueError) as exc:
                    parser.error(f"cannot read rows from {path}: {exc}")
                example, reference = (read, reference) if option == "example" else (example, read)
            return client.register(
                artifact,
                args.name,
                description=args.description,
                tags=_pairs(args.tag, "tag", parser),
                metrics=_metrics(args.metric, parser),
                # a bar on a terminal only, and never into --json's output
                progress=_no_progress if args.json else None,
                input_example=example,
                runtime=args.runtime,
                reference=reference,
            )
        case "list":
            return client.list_models()
        case "show":
            return client.show(args.name, args.version)
        case "alias" if args.alias_command == "set":
            return client.set_alias(
                args.name, args.alias, _alias_version(args.version, parser), args.salt,
                shadow=args.shadow,
            )  # fmt: skip
        case "alias":
            return client.delete_alias(args.name, args.alias)
        case "edit":
            tags: dict[str, str | None] = {**_pairs(args.tag, "tag", parser)}
            tags.update(dict.fromkeys(args.remove_tag))
            metrics: dict[str, float | None] = {**_metrics(args.metric, parser)}
            metrics.update(dict.fromkeys(args.remove_metric))
            if args.description is None and not tags and not metrics:
                parser.error("edit needs --description, --tag, --metric or a --remove-... option")
            return client.edit(
                args.name, args.version, args.description, tags or None, metrics or None
            )
        case "convert":
            return client.convert(args.name, args.versions or None)
        case "archive":
            return client.archive(args.name, args.version)
        case "restore":
            return client.restore(args.name, args.version)
        case "delete":
            return client.delete_model(args.name, force=args.force)
        case "runtime" if args.runtime_command == "check":
            return client.runtime_check(args.line, args.model)
        case "runtime" if args.runtime_command == "lines":
            return client.runtime_lines()
        case "runtime":
            return client.runtime()
        case "batch":
            return client.batch(
                args.name,
                args.input,
                args.output,
                format=args.format,
                version=args.version,
                alias=args.alias,
                probabilities=args.probabilities,
                id_column=args.id_column,
                job_id=args.job_id,
                wait=args.wait,
                progress=None if args.json else batch_progress,
            )
        case "monitor":
            try:
                reference = read_reference(args.reference) if args.reference else None
                report = monitor(client, args.name, args.version, args.since, reference)
                if args.html is not None:
                    args.html.write_text(html_page(report))
                    report["html"] = str(args.html)
            except MonitorError as exc:
                parser.exit(1, f"error: {exc}\n")
            return report
        case "shadow":
            try:
                return shadow_report(
                    client, args.name, args.alias, args.since, args.work_dir,
                    args.input_uri, args.output_uri,
                )  # fmt: skip
            except ShadowReportError as exc:
                parser.exit(1, f"error: {exc}\n")
        case "capture" if args.sample_percent is not None:
            share = None if args.sample_percent == "default" else args.sample_percent
            return client.set_capture_share(args.name, share)
        case "capture":
            records = client.captured_records(args.name, args.version, args.since)
            if args.output is None:
                return {"model": args.name, "records": records}
            table = captured_table(records)
            args.output.write_text(_csv_text(table))
            return {"model": args.name, "rows": len(table), "output": str(args.output)}
        case "batch-status" if args.wait:
            progress = None if args.json else batch_progress
            return client.wait_for_batch(args.job_id, progress)
        case "batch-status":
            return client.batch_status(args.job_id)
        case "classify" if args.instances is not None:
            try:
                instances = json.loads(args.instances)
            except ValueError:
                instances = None
            if not isinstance(instances, list) or not instances:
                parser.error("--instances takes a JSON list of rows, e.g. '[[0.5, 0.2]]'")
            answer = client.predict_rows(
                args.name, instances, args.version, args.alias, args.probabilities,
                routing_key=args.routing_key,
            )  # fmt: skip
            return write_predictions(answer, args.output) if args.output else answer
        case "classify":
            try:
                rows = read_encoded(args.input)
            except (OSError, ValueError) as exc:
                parser.error(f"cannot read rows from {args.input}: {exc}")
            answer = client.predict_rows(
                args.name,
                rows,
                args.version,
                args.alias,
                args.probabilities,
                batch_rows=args.batch_rows,
                connections=args.connections,
                routing_key=args.routing_key,
            )
            return write_predictions(answer, args.output) if args.output else answer
    parser.error(f"unknown command {args.command!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        try:
            answer = run(args, parser)
        except ApiError as error:
            _print_error(error, args.json)
            return 1
        except OSError as error:  # a local file: --output's folder, a full disk
            print(f"error: {error.strerror or error}: {error.filename or ''}", file=sys.stderr)
            return 1
        subcommand = getattr(args, "runtime_command", None) or getattr(args, "shadow_command", None)
        command = " ".join(filter(None, [args.command, subcommand]))
        text = json.dumps(answer, indent=2) if args.json else _readable(command, answer)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # `... | head` closed the pipe: what it wanted was printed. Quietly, and nothing more
        # to flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        return 130
    return 0


def _print_error(error: ApiError, as_json: bool) -> None:
    step = error.next_step("cli")
    if as_json:
        fields = {"status": error.status, "code": error.code, "message": error.message}
        print(json.dumps({**fields, "next_step": step}), file=sys.stderr)
        return
    print(f"error: {error.heading()}: {error.message}", file=sys.stderr)
    if step:
        print(f"next: {step}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
