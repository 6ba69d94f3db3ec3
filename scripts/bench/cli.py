"""`model-registry classify --input` on a large CSV file against the local server, as a user
runs it (a process of its own, interpreter start included), against the model's own predict
on the same file in this process."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy
import pandas
import skops.io
from sklearn.compose import make_column_transformer
from sklearn.datasets import load_wine
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits
from train_moons import joblib_bytes, train_moons

from bench.common import REPO_ROOT, Row, fmt


def wine_pipeline() -> tuple[Any, pandas.DataFrame]:
    """The README's DataFrame pipeline (a string column, missing values) and its table."""
    wine = load_wine(as_frame=True)
    table = wine.data[["alcohol", "malic_acid", "color_intensity", "proline"]].copy()
    table["cellar"] = ["north", "south", "east"] * 59 + ["north"]
    table.loc[::10, "malic_acid"] = None
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["cellar"]),
            (SimpleImputer(), ["alcohol", "malic_acid", "color_intensity", "proline"]),
        ),
        HistGradientBoostingClassifier(max_iter=50, random_state=0),
    ).fit(table, wine.target)
    return model, table


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


class CliRows:
    def cli_rows(self) -> list[Row]:
        """classify --input of a CSV file, written by pandas, with --output, timed end to end
        (median of runs), against pandas.read_csv and predict on the same file in this
        process, with the native threads the server predicts with (NATIVE_THREADS, one here);
        the detail also gives the ratio against this machine's default thread count."""
        rows = 20_000 if self.quick else 100_000
        runs = 1 if self.quick else 5
        wine, table = wine_pipeline()
        moons = train_moons()
        features = numpy.random.default_rng(0).normal(size=(rows, 2))
        measured: list[Row] = []
        with tempfile.TemporaryDirectory(prefix="bench-cli-") as workdir:
            folder = Path(workdir)
            skops.io.dump(wine, folder / "wine.skops")
            table.head(5).to_csv(folder / "example.csv", index=False)
            sampled = table.sample(rows, replace=True, random_state=0)
            sampled.to_csv(folder / "wine.csv", index=False)
            (folder / "moons.joblib").write_bytes(joblib_bytes(moons))
            pandas.DataFrame(features, columns=["data1", "data2"]).to_csv(
                folder / "moons.csv", index=False
            )
            with self.local_api_server() as (host, port):
                url = f"http://{host}:{port}"
                self._command(url, "register", folder / "wine.skops", "--name", "wine",
                              "--input-example", folder / "example.csv")  # fmt: skip
                self._command(url, "register", folder / "moons.joblib", "--name", "moons-cli")
                for name, model, what in (
                    ("wine", wine, "DataFrame pipeline"),
                    ("moons-cli", moons, "blog's model"),
                ):
                    measured.append(self._classify_row(url, folder, name, model, what, rows, runs))
        return measured

    def _classify_row(
        self, url: str, folder: Path, name: str, model: Any, what: str, rows: int, runs: int
    ) -> Row:
        source = folder / ("wine.csv" if name == "wine" else "moons.csv")
        output = folder / f"{name}-predictions.csv"
        took = []
        for _ in range(runs + 1):  # the first loads the model into the server
            start = time.perf_counter()
            self._command(url, "classify", name, "--input", source, "--output", output)
            took.append(time.perf_counter() - start)
        over_cli = median(took[1:])

        def in_process() -> Any:
            frame = pandas.read_csv(source)
            return model.predict(frame if name == "wine" else frame.to_numpy())

        with threadpool_limits(1):
            expected = in_process()
            one_thread = median([_timed(in_process) for _ in range(runs + 2)])
        # every core: pools that earlier measurements of this process held to one let go
        with threadpool_limits(os.cpu_count()):
            default_threads = median([_timed(in_process) for _ in range(runs + 2)])
        written = pandas.read_csv(output)["prediction"].to_numpy()
        assert numpy.array_equal(written, expected), "the command's predictions are not exact"
        return Row(
            f"classify --input {rows:,} rows, {what} / in-process predict",
            over_cli / one_thread,
            f"{fmt(over_cli)} vs {fmt(one_thread)} (pandas.read_csv + predict, one native "
            f"thread as the server; {over_cli / default_threads:.2f} against "
            f"{fmt(default_threads)} with {os.cpu_count()} threads)",
        )

    @staticmethod
    def _command(url: str, *args: Any) -> None:
        command = [sys.executable, "-m", "registry.client.cli", "--url", url]
        done = subprocess.run(
            [*command, *map(str, args)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]


def _timed(call: Any) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start
