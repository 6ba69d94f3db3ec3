"""docs/benchmarks.md and its chart, from the rows."""

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy
import sklearn

from bench.common import (
    Row,
)


def write_report(
    rows: list[Row],
    output_dir: Path,
    quick: bool,
    mlflow_versions: dict[str, str],
    notes: list[str] | None = None,
) -> Path:
    """docs/benchmarks.md and its chart; notes are paragraphs written before the chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output_dir.mkdir(parents=True, exist_ok=True)
    chart = output_dir / "benchmarks.png"
    figure, axis = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.2))
    measured = [row for row in rows if row.ratio is not None][::-1]
    axis.barh([row.name for row in measured], [row.ratio for row in measured], color="#4c78a8")
    # Each goal, marked on its row: a bar should end left of a '<=' mark, right of a '>='.
    goals = [(index, row.target()) for index, row in enumerate(measured) if row.target()]
    for op in ("<=", ">="):
        marks = [(index, goal[1]) for index, goal in goals if goal and goal[0] == op]
        if marks:
            axis.scatter(
                [target for _, target in marks],
                [index for index, _ in marks],
                marker="|",
                s=300,
                linewidths=2.5,
                color="#d62728" if op == "<=" else "#2ca02c",
                label=f"goal: at most ({op})" if op == "<=" else f"goal: at least ({op})",
                zorder=3,
            )
    if goals:
        axis.legend(loc="lower right", fontsize=8)
    axis.set_xscale("log")
    axis.axvline(1.0, color="grey", linewidth=0.8)
    axis.set_xlabel("ratio (log scale)")
    axis.set_title("model-registry benchmark ratios")
    axis.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    figure.savefig(chart, dpi=110)
    plt.close(figure)

    lines = [
        "# Benchmarks",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make bench` (`scripts/bench/`"
        f"{' --quick' if quick else ''}): the real handlers invoked in-process with API Gateway"
        " REST events, S3 from moto's ThreadedMotoServer on 127.0.0.1. Each figure is a median;"
        " ratios are measured side by side, so they travel across machines better than times.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
        f"Python {platform.python_version()}, scikit-learn {sklearn.__version__}, "
        f"numpy {numpy.__version__}, joblib {joblib.__version__}.",
        "",
        "| measure | ratio | goal | medians |",
        "| --- | ---: | --- | --- |",
        *[f"| {row.name} | {row.ratio_text()} | {row.goal()} | {row.detail} |" for row in rows],
        "",
        "The blog request is the blog's handler body: `download_file` from S3 to /tmp, "
        "`pickle.load`, `predict`, on every request. The small model is the blog's "
        "RandomForestClassifier(n_estimators=5) on make_moons; the large one has 300 trees.",
        "",
        "HGB and KNN are HistGradientBoostingClassifier(max_iter=100) and KNeighborsClassifier()"
        " on load_wine, asked for one row through POST /predict. Before, the native thread pools"
        " were left at the machine's cores; after, threadpoolctl holds them to NATIVE_THREADS"
        " (0: the function's CPU share: 1 thread outside Lambda and in a 1,024 MB function),"
        " set once per calling thread. HGB predicts through OpenMP; KNN on 13 features picks a"
        " k-d tree, which uses neither pool, so its rows show what the limit itself costs."
        " 'From a fresh thread' makes each request from a new thread, as"
        " scripts/local_api.py's threading server does, timed inside that thread: OpenMP"
        " makes a team for each calling thread.",
        "",
        "The local server rows post to scripts/local_api.py (one process, its threading"
        " server, over a directory store) through one kept-alive HTTP/1.1 connection, timed"
        " from the request to the last byte of the answer. 'mlflow models serve' is"
        f" MLflow {mlflow_versions.get('mlflow', '(not installed)')} from the venv `make bench`"
        " installs (.venv-mlflow, with the same scikit-learn and numpy), serving the same"
        " model (its joblib bytes saved by mlflow.sklearn.save_model) with"
        " `--env-manager local` and one uvicorn worker, its default; the same"
        ' `{"instances": [...]}` body goes to POST /invocations of each, over a kept-alive'
        " connection of its own, the two timed in turn, and both answers are checked"
        " against the model's own predict.",
        "",
        "The 'built package' rows run what `make package` built, as Lambda does: a bare"
        " `python3.12 -I -S -B` (no site-packages, no bytecode written, as on the read-only"
        " /opt) with only the predict function, its layer and boto3 on the path, a new"
        " process per run, over a directory store. 'bytecode' is the layer as built, with"
        " the unchecked hash-based .pyc layer/bytecode.py compiled for the modules the"
        " handlers import; 'none' is the same layer with every __pycache__ removed, as the"
        " layer shipped before. 'Compiled form' serves the blog's forest as registered now:"
        " its numpy arrays read, bounds-checked and walked, with no scikit-learn imported (the"
        " run checks sys.modules); 'skops copy' serves the same forest from the skops copy the"
        " validator makes of a joblib model outside the compiled families: scikit-learn and"
        " skops imported, the forest loaded with trusted types. 'Preloaded' sets"
        " PRELOAD_DEFAULT_MODEL, so init loads the compiled"
        " forest and the first request finds it. The 'cold init' rows above run in the"
        " development venv, which has bytecode, so they do not show this.",
        "",
        "Why the compiled form is evaluated by our own code (registry/compiled.py), not by a"
        " library: treelite's GTIL and skl2onnx with onnxruntime were measured first"
        " (docs/tree-runtimes.md). Neither is exact with scikit-learn as it is: ONNX Runtime"
        " runs trees in float32 only (its float64 path does not load) and misroutes"
        " HistGradientBoosting at thresholds; treelite 4.8.1 is exact for the five families"
        " only with three fixes of ours around it (rows rounded to float32 for all but"
        " HistGradientBoosting, the baseline folded into the first trees' leaves, a float64"
        " softmax), loads its own binary format rather than plain arrays, imports scipy"
        " (216 ms of a cold start) and was slower than scikit-learn at 1,000 rows (41.8 ms"
        " vs 28.9 ms on one thread for 300 trees). Those three fixes are most of an"
        " evaluator, so registry/compiled.py does them over numpy arrays (.npz loaded with"
        " allow_pickle=False, every index bounds-checked), walks every tree at once (one"
        " numpy call per depth step for all rows and trees, the pairs that reached a leaf set"
        " aside every 6 steps), sums in scikit-learn's order (a cumulative sum or a loop over"
        " stages, never a pairwise sum), and imports nothing but numpy. The validator keeps"
        " a form only if it matched scikit-learn bit for bit on the registrant's example and"
        " about 2,500 generated rows.",
        "",
        *[paragraph for note in (notes or []) if note for paragraph in (note, "")],
        "![benchmark ratios](benchmarks.png)",
        "",
    ]
    report = output_dir / "benchmarks.md"
    report.write_text("\n".join(lines))
    return report
