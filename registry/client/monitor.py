"""A monitor of captured predictions: how the inputs a version sees in production compare with
its reference rows, and what it answered over time.

Per column: for numbers, the population stability index (PSI) over ten bins cut at the
reference's deciles, for text, each category's share in both, and for every column, the share
of missing values. Then the distribution of predictions by hour. The reference is the rows
given with --reference, else those kept with the version (`register --reference`), else its
input_example.

numpy and pandas do the arithmetic; matplotlib draws the charts of the HTML page, as SVG kept
inside it, so the page is one self-contained file. Those three are imported only here: the
client installs without them, and `model-registry monitor` says which to install when one
is missing.

PSI: sum over bins of (share now - share then) * ln(share now / share then), each share at
least 0.0001 so an empty bin counts without dividing by zero. Under 0.1 is usually read as
stable, 0.1 to 0.25 as a shift worth a look, over 0.25 as a shift.
"""

import html
import io
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.client.registry_client import RegistryClient

BINS = 10
FLOOR = 1e-4
TOP_CATEGORIES = 5
SHIFT = 0.25
WATCH = 0.1


class MonitorError(Exception):
    """The monitor cannot be made; the message says what to do."""


def monitor(
    client: "RegistryClient",
    name: str,
    version: int | None = None,
    since: str | None = None,
    reference: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The version's captured inputs against its reference rows, and its answers by hour."""
    pandas = _pandas()
    records = client.captured_records(name, version, since)
    if not records:
        raise MonitorError(
            f"no captured predictions of {name!r}"
            + (f" version {version}" if version is not None else "")
            + (f" since {since}" if since else "")
            + f": capture some first (`model-registry capture {name} --sample-percent 10`)"
        )
    if version is None:  # the version that answered most recently
        version = int(records[-1]["version"])
        records = [record for record in records if record["version"] == version]
    manifest = client.show(name, version)
    columns = [column for column in (manifest.get("signature") or {}).get("columns", [])]
    names = [column["name"] for column in columns]
    rows = reference
    if rows is None:
        rows = client.reference(name, version) or manifest.get("input_example")
    if not rows:
        raise MonitorError(
            f"version {version} of {name!r} has no reference rows or input_example to compare "
            "with: give them (`--reference train.csv`, a CSV or JSON lines of its inputs), or "
            f"keep them with the version (`model-registry register FILE --name {name} "
            "--reference train.csv`)"
        )
    then = _frame(pandas, rows, names)
    now = _frame(pandas, [row for record in records for row in record["rows"]], names)
    report_columns = [
        _column(column["name"], column.get("kind", "number"), then, now) for column in columns
    ]
    return {
        "model": name,
        "version": version,
        "reference_rows": len(then),
        "captured_rows": len(now),
        "first": records[0]["eventMetadata"]["inferenceTime"],
        "last": records[-1]["eventMetadata"]["inferenceTime"],
        "columns": report_columns,
        "predictions": _predictions_by_hour(pandas, records, manifest.get("classes")),
    }


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise MonitorError("the monitor needs pandas and numpy: pip install pandas") from None
    return pandas


def _frame(pandas: Any, rows: Sequence[Any], names: list[str]) -> Any:
    """Rows as lists (in the model's order) or objects, as one table with the model's columns.
    An object that names none of them (a model fitted without names, whose columns are "0",
    "1"...) is read in order, as a list."""
    records = []
    for row in rows:
        if isinstance(row, dict) and not any(name in row for name in names):
            row = list(row.values())
        records.append(
            dict(zip(names, row, strict=False)) if isinstance(row, list | tuple) else dict(row)
        )
    return pandas.DataFrame.from_records(records, columns=names)


def _column(name: str, kind: str, then: Any, now: Any) -> dict[str, Any]:
    import numpy

    before, after = then[name], now[name]
    result: dict[str, Any] = {
        "column": name,
        "kind": kind,
        "missing_reference": float(before.isna().mean()) if len(before) else 0.0,
        "missing_captured": float(after.isna().mean()) if len(after) else 0.0,
    }
    if kind == "number":
        reference = before.dropna().to_numpy(dtype=float)
        captured = after.dropna().to_numpy(dtype=float)
        edges = numpy.unique(numpy.quantile(reference, numpy.linspace(0, 1, BINS + 1)))
        if len(reference) == 0 or len(captured) == 0 or len(edges) < 2:
            result.update(psi=None, bins=[])
            return result
        inner = edges[1:-1]  # open-ended first and last bins: values beyond the reference count
        then_shares = _shares(numpy.bincount(numpy.searchsorted(inner, reference, "right"),
                                             minlength=len(inner) + 1))  # fmt: skip
        now_shares = _shares(numpy.bincount(numpy.searchsorted(inner, captured, "right"),
                                            minlength=len(inner) + 1))  # fmt: skip
        result.update(
            psi=_psi(then_shares, now_shares),
            edges=[float(edge) for edge in edges],
            reference_shares=then_shares,
            captured_shares=now_shares,
        )
        return result
    texts_then = before.dropna().astype(str)
    texts_now = after.dropna().astype(str)
    categories = list(dict.fromkeys([*texts_then.tolist(), *texts_now.tolist()]))
    then_counts = texts_then.value_counts()
    now_counts = texts_now.value_counts()
    then_shares = _shares([int(then_counts.get(label, 0)) for label in categories])
    now_shares = _shares([int(now_counts.get(label, 0)) for label in categories])
    order = sorted(range(len(categories)), key=lambda index: -now_shares[index])
    result.update(
        psi=_psi(then_shares, now_shares) if len(texts_then) and len(texts_now) else None,
        categories=[
            {
                "category": categories[index],
                "reference_share": then_shares[index],
                "captured_share": now_shares[index],
            }
            for index in order[:TOP_CATEGORIES]
        ],
    )
    return result


def _shares(counts: Any) -> list[float]:
    total = sum(counts)
    return [count / total if total else 0.0 for count in counts]


def _psi(then: Sequence[float], now: Sequence[float]) -> float:
    import numpy

    expected = numpy.maximum(numpy.asarray(then, dtype=float), FLOOR)
    actual = numpy.maximum(numpy.asarray(now, dtype=float), FLOOR)
    return float(numpy.sum((actual - expected) * numpy.log(actual / expected)))


def _predictions_by_hour(
    pandas: Any, records: list[dict[str, Any]], classes: Any
) -> list[dict[str, Any]]:
    frame = pandas.DataFrame(
        [
            {"hour": record["eventMetadata"]["inferenceTime"][:13] + ":00Z", "prediction": value}
            for record in records
            for value in record["predictions"]
        ]
    )
    hours = []
    for hour, group in frame.groupby("hour", sort=True):
        entry: dict[str, Any] = {"hour": hour, "rows": len(group)}
        if classes is not None:
            shares = group["prediction"].astype(str).value_counts(normalize=True)
            entry["shares"] = {str(label): float(shares.get(str(label), 0.0)) for label in classes}
        else:
            values = pandas.to_numeric(group["prediction"], errors="coerce")
            entry.update(mean=float(values.mean()), p05=float(values.quantile(0.05)),
                         p95=float(values.quantile(0.95)))  # fmt: skip
        hours.append(entry)
    return hours


# -- the page ---------------------------------------------------------------------------


def verdict(psi: float | None) -> str:
    if psi is None:
        return "n/a"
    return "shift" if psi > SHIFT else "watch" if psi > WATCH else "stable"


def html_page(report: dict[str, Any]) -> str:
    """One self-contained page: the summary table and a chart per column, then the
    predictions by hour; the charts are SVG inside the page (no script, no link out)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise MonitorError("the monitor's page needs matplotlib: pip install matplotlib") from None
    escape = html.escape
    figures = []
    for column in report["columns"]:
        figure, axes = pyplot.subplots(figsize=(6, 2.6))
        if column["kind"] == "number" and column.get("edges"):
            labels = _bin_labels(column["edges"])
            _paired_bars(axes, labels, column["reference_shares"], column["captured_shares"])
        elif column.get("categories"):
            labels = [entry["category"] for entry in column["categories"]]
            _paired_bars(
                axes, labels,
                [entry["reference_share"] for entry in column["categories"]],
                [entry["captured_share"] for entry in column["categories"]],
            )  # fmt: skip
        axes.set_title(
            f"{column['column']}: PSI {_number(column['psi'])} ({verdict(column['psi'])})"
        )
        axes.set_ylabel("share of rows")
        figures.append((column["column"], _svg(pyplot, figure)))
    figure, axes = pyplot.subplots(figsize=(8, 3))
    hours = report["predictions"]
    if hours and "shares" in hours[0]:
        ticks = [hour["hour"][5:16] for hour in hours]
        for label in hours[0]["shares"]:
            shares = [hour["shares"][label] for hour in hours]
            axes.plot(ticks, shares, marker="o", label=str(label))
        axes.set_ylabel("share of predictions")
    else:
        axes.plot([hour["hour"][5:16] for hour in hours], [hour.get("mean") for hour in hours],
                  marker="o", label="mean")  # fmt: skip
        axes.set_ylabel("prediction")
    axes.set_title("predictions by hour")
    axes.legend(loc="best", fontsize="small")
    axes.tick_params(axis="x", labelrotation=30, labelsize="small")
    over_time = _svg(pyplot, figure)
    rows = "".join(
        f"<tr><td>{escape(column['column'])}</td><td>{escape(column['kind'])}</td>"
        f"<td class='{verdict(column['psi'])}'>"
        f"{_number(column['psi'])} {verdict(column['psi'])}</td>"
        f"<td>{column['missing_reference']:.1%} &rarr; {column['missing_captured']:.1%}</td></tr>"
        for column in report["columns"]
    )
    charts = "".join(
        f"<figure class='chart' data-column='{escape(name)}'>{svg}</figure>"
        for name, svg in figures
    )
    title = f"{report['model']} version {report['version']}: monitor"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .3rem .8rem; text-align: left; }}
.stable {{ color: #2a7a2a; }} .watch {{ color: #b07000; }}
.shift {{ color: #b00020; font-weight: bold; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
figure {{ margin: 0; }} svg {{ max-width: 100%; height: auto; }}
</style></head>
<body>
<h1>{escape(title)}</h1>
<p>{report["captured_rows"]:,} captured rows from {escape(report["first"])} to
{escape(report["last"])}, against {report["reference_rows"]:,} reference rows.</p>
<table><thead><tr><th>column</th><th>kind</th><th>PSI</th>
<th>missing (reference &rarr; captured)</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Inputs: reference and captured</h2>
<div class="charts">{charts}</div>
<h2>Predictions</h2>
<figure class="chart" data-column="predictions">{over_time}</figure>
</body></html>
"""


def _paired_bars(axes: Any, labels: list[str], then: list[float], now: list[float]) -> None:
    positions = list(range(len(labels)))
    axes.bar([p - 0.2 for p in positions], then, width=0.4, label="reference")
    axes.bar([p + 0.2 for p in positions], now, width=0.4, label="captured")
    axes.set_xticks(positions, labels, rotation=30, fontsize="x-small")
    axes.legend(loc="best", fontsize="small")


def _bin_labels(edges: list[float]) -> list[str]:
    inner = edges[1:-1]
    if not inner:
        return ["all"]
    middle = [f"{low:.3g} to {high:.3g}" for low, high in itertools.pairwise(inner)]
    return [f"< {inner[0]:.3g}", *middle, f">= {inner[-1]:.3g}"]


def _svg(pyplot: Any, figure: Any) -> str:
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    pyplot.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def table_text(report: dict[str, Any]) -> str:
    """The report as text: a line per column, then the predictions by hour."""
    lines = [
        f"{report['model']} version {report['version']}: {report['captured_rows']:,} captured "
        f"rows ({report['first']} to {report['last']}) against {report['reference_rows']:,} "
        "reference rows",
        "",
        f"{'column':<24} {'kind':<8} {'PSI':>8}  {'':<7} missing (reference -> captured)",
    ]
    for column in report["columns"]:
        lines.append(
            f"{column['column'][:24]:<24} {column['kind']:<8} {_number(column['psi']):>8}  "
            f"{verdict(column['psi']):<7} {column['missing_reference']:.1%} -> "
            f"{column['missing_captured']:.1%}"
        )
    lines += ["", "predictions by hour:"]
    for hour in report["predictions"]:
        if "shares" in hour:
            shares = ", ".join(f"{label} {share:.1%}" for label, share in hour["shares"].items())
        else:
            shares = f"mean {hour['mean']:.6g}, p05 {hour['p05']:.6g}, p95 {hour['p95']:.6g}"
        lines.append(f"  {hour['hour']}  {hour['rows']:,} rows: {shares}")
    return "\n".join(lines)


def read_reference(path: str) -> list[dict[str, Any]]:
    """Reference rows from a CSV file with a header, or JSON lines (.jsonl) of objects."""
    pandas = _pandas()
    try:
        if path.endswith((".jsonl", ".json")):
            frame = pandas.read_json(path, lines=True)
        else:
            frame = pandas.read_csv(path)
    except (OSError, ValueError) as exc:
        raise MonitorError(f"cannot read reference rows from {path}: {exc}") from None
    records: list[dict[str, Any]] = frame.to_dict(orient="records")
    return records
