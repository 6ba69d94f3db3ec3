"""model-registry: register, inspect, edit, convert, alias, archive, restore, delete, classify."""

import argparse
import csv
import io
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from registry.client.registry_client import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_INLINE_LIMIT,
    DEFAULT_URL,
    ApiError,
    RegistryClient,
)


def _pairs(values: list[str], kind: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, separator, item = value.partition("=")
        if not separator or not key:
            parser.error(f"--{kind} takes key=value, got {value!r}")
        pairs[key] = item
    return pairs


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
    if command == "classify":
        columns = ["instance", "prediction"] + (
            ["probabilities"] if "probabilities" in answer else []
        )
        rows = [
            {
                "instance": index,
                "prediction": label,
                "probabilities": (answer.get("probabilities") or [None] * (index + 1))[index],
            }
            for index, label in enumerate(answer["predictions"])
        ]
        return f"{answer['model']} version {answer['version']}\n" + _table(rows, columns)
    if isinstance(answer, dict):
        if isinstance(answer.get("signature"), dict):
            answer = {**answer, "signature": _signature_text(answer["signature"])}
        width = max(map(len, answer), default=0)
        return "\n".join(f"{key.ljust(width)}  {_cell(value)}" for key, value in answer.items())
    return json.dumps(answer)


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


def read_rows(path: Path) -> list[Any]:
    """Rows from a CSV file (objects by its header) or JSON lines (objects or lists).

    A CSV column whose every filled cell is a number is read as numbers, one whose every
    filled cell is true or false as booleans, any other as strings; an empty cell is null.
    """
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json") or text.lstrip()[:1] in ("{", "["):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    table = list(csv.DictReader(io.StringIO(text)))
    if not table:
        raise ValueError("no rows under the header")
    columns = {name: _typed_column([row[name] for row in table]) for name in table[0]}
    return [
        {name: values[index] for name, values in columns.items()} for index in range(len(table))
    ]


def _typed_column(cells: list[str | None]) -> list[Any]:
    filled = [cell for cell in cells if cell not in ("", None)]
    for convert in (int, _finite_float, _boolean):
        try:
            converted = {cell: convert(cell) for cell in filled}
        except ValueError:
            continue
        return [None if cell in ("", None) else converted[cell] for cell in cells]
    return [None if cell in ("", None) else cell for cell in cells]


def _finite_float(cell: str | None) -> float:
    value = float(cell or "")
    if not math.isfinite(value):  # "nan", "inf": read as text, as they are not numbers in JSON
        raise ValueError(cell)
    return value


def _boolean(cell: str | None) -> bool:
    lowered = (cell or "").lower()
    if lowered not in ("true", "false"):
        raise ValueError(cell)
    return lowered == "true"


def _written(answer: dict[str, Any], output: Path | None) -> dict[str, Any]:
    """The answer; with an output path, its predictions also written there, one row a line."""
    if output is None:
        return answer
    probabilities = answer.get("probabilities")
    with output.open("w", encoding="utf-8", newline="") as file:
        if output.suffix.lower() == ".csv":
            writer = csv.writer(file)
            writer.writerow(["row", "prediction"] + (["probabilities"] if probabilities else []))
            for index, prediction in enumerate(answer["predictions"]):
                cells = [index, _csv_cell(prediction)]
                if probabilities:
                    cells.append(json.dumps(probabilities[index]))
                writer.writerow(cells)
        else:
            for index, prediction in enumerate(answer["predictions"]):
                line: dict[str, Any] = {"prediction": prediction}
                if probabilities:
                    line["probabilities"] = probabilities[index]
                file.write(json.dumps(line) + "\n")
    return answer


def _csv_cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list) else value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-registry", description=__doc__)
    parser.add_argument(
        "--url",
        default=os.environ.get("MODEL_REGISTRY_URL", DEFAULT_URL),
        help="the API's base URL (default: $MODEL_REGISTRY_URL or the local server)",
    )
    parser.add_argument("--api-key", default=os.environ.get("MODEL_REGISTRY_API_KEY"))
    parser.add_argument(
        "--sign",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="SigV4-sign /models requests (default: only for execute-api URLs)",
    )
    parser.add_argument("--region", help="AWS region for signing (default: from the URL)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")
    # --json is accepted before or after the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)

    register = commands.add_parser(
        "register", parents=[common], help="register a .skops or joblib file as a new version"
    )
    register.add_argument(
        "path", type=Path, help="a file of skops.io.dump (.skops) or joblib.dump (.joblib)"
    )
    register.add_argument("--name", required=True)
    register.add_argument("--description", default="")
    register.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    register.add_argument("--metric", action="append", default=[], metavar="KEY=NUMBER")
    register.add_argument(
        "--input-example",
        type=Path,
        metavar="ROWS",
        help="a CSV or JSON lines file of a few rows (at most 100) the model must predict on",
    )
    register.add_argument(
        "--inline-limit",
        type=int,
        default=DEFAULT_INLINE_LIMIT,
        help="larger artifacts go through a presigned upload (default: %(default)s bytes)",
    )

    commands.add_parser(
        "list", parents=[common], help="every model with its latest version and aliases"
    )

    show = commands.add_parser(
        "show", parents=[common], help="a model's versions, or one version's manifest"
    )
    show.add_argument("name")
    show.add_argument("--version", type=int)

    alias = commands.add_parser("alias", parents=[common], help="set or remove an alias")
    alias_commands = alias.add_subparsers(dest="alias_command", required=True)
    alias_set = alias_commands.add_parser("set", parents=[common])
    alias_set.add_argument("name")
    alias_set.add_argument("alias")
    alias_set.add_argument("version", type=int)
    alias_rm = alias_commands.add_parser("rm", parents=[common])
    alias_rm.add_argument("name")
    alias_rm.add_argument("alias")

    edit = commands.add_parser(
        "edit", parents=[common], help="change a version's description, tags or metrics"
    )
    edit.add_argument("name")
    edit.add_argument("version", type=int)
    edit.add_argument("--description")
    edit.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    edit.add_argument("--metric", action="append", default=[], metavar="KEY=NUMBER")
    edit.add_argument("--remove-tag", action="append", default=[], metavar="KEY")
    edit.add_argument("--remove-metric", action="append", default=[], metavar="KEY")

    convert = commands.add_parser(
        "convert",
        parents=[common],
        help="give joblib versions registered before predict stopped unpickling a skops copy",
    )
    convert.add_argument("name")
    convert.add_argument(
        "versions", type=int, nargs="*", help="the versions to convert (default: every version)"
    )

    archive = commands.add_parser("archive", parents=[common], help="archive a version")
    archive.add_argument("name")
    archive.add_argument("version", type=int)

    restore = commands.add_parser(
        "restore", parents=[common], help="bring an archived version back"
    )
    restore.add_argument("name")
    restore.add_argument("version", type=int)

    delete = commands.add_parser(
        "delete", parents=[common], help="delete a model: every version, alias and object"
    )
    delete.add_argument("name")
    delete.add_argument(
        "--force", action="store_true", help="delete it even while aliases point into it"
    )

    commands.add_parser(
        "runtime", parents=[common], help="the versions models must be pickled with"
    )

    classify = commands.add_parser("classify", parents=[common], help="predict with a model")
    classify.add_argument("name")
    pin = classify.add_mutually_exclusive_group()
    pin.add_argument("--version", type=int)
    pin.add_argument("--alias")
    rows = classify.add_mutually_exclusive_group(required=True)
    rows.add_argument("--instances", help='JSON, e.g. "[[0.5, 0.2]]"')
    rows.add_argument(
        "--input",
        type=Path,
        help="a CSV file with a header row, or JSON lines (.jsonl: one row a line); - reads stdin",
    )
    classify.add_argument(
        "--output", type=Path, help="write the predictions here (.csv, else JSON lines)"
    )
    classify.add_argument("--probabilities", action="store_true")
    classify.add_argument(
        "--batch-rows",
        type=int,
        default=DEFAULT_BATCH_ROWS,
        help="the most rows one request carries (default: %(default)s)",
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
            example = None
            if args.input_example is not None:
                try:
                    example = read_rows(args.input_example)
                except (OSError, ValueError) as exc:
                    parser.error(f"cannot read rows from {args.input_example}: {exc}")
            return client.register(
                artifact,
                args.name,
                description=args.description,
                tags=_pairs(args.tag, "tag", parser),
                metrics=_metrics(args.metric, parser),
                # a bar on a terminal only, and never into --json's output
                progress=_no_progress if args.json else None,
                input_example=example,
            )
        case "list":
            return client.list_models()
        case "show":
            return client.show(args.name, args.version)
        case "alias" if args.alias_command == "set":
            return client.set_alias(args.name, args.alias, args.version)
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
        case "runtime":
            return client.runtime()
        case "classify" if args.instances is not None:
            try:
                instances = json.loads(args.instances)
            except ValueError:
                parser.error("--instances must be JSON, e.g. '[[0.5, 0.2]]'")
            answer = client.predict_rows(
                args.name, instances, args.version, args.alias, args.probabilities
            )
            return _written(answer, args.output)
        case "classify":
            try:
                rows = read_rows(args.input)
            except (OSError, ValueError) as exc:
                parser.error(f"cannot read rows from {args.input}: {exc}")
            answer = client.predict_rows(
                args.name,
                rows,
                args.version,
                args.alias,
                args.probabilities,
                batch_rows=args.batch_rows,
            )
            return _written(answer, args.output)
    parser.error(f"unknown command {args.command!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        answer = run(args, parser)
    except ApiError as error:
        print(
            json.dumps({"status": error.status, "code": error.code, "message": error.message})
            if args.json
            else f"error: {error}",
            file=sys.stderr,
        )
        return 1
    except OSError as error:
        print(f"error: cannot reach {args.url}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2) if args.json else _readable(args.command, answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
