"""The command and the client as a new user meets them: every error names the next step, a
closed pipe is quiet, --output writes a file and says so, and global flags go anywhere."""

import io
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy
import pandas
import pytest
from sklearn.datasets import make_moons
from sklearn.linear_model import LogisticRegression

from registry.client import ApiError, RegistryClient
from tests.support.http import API_KEY, cli
from tests.support.models import distinct_model_bytes, joblib_of


@pytest.fixture(scope="module")
def moons_registry(
    module_api_url: str, tmp_path_factory: pytest.TempPathFactory, moons_bytes: bytes
) -> Iterator[str]:
    """moons versions 1 (archived) and 2 (production): the server's URL."""
    folder = tmp_path_factory.mktemp("guidance")
    for index, artifact in enumerate([moons_bytes, distinct_model_bytes(3)]):
        (folder / f"{index}.joblib").write_bytes(artifact)
        cli(module_api_url, "register", str(folder / f"{index}.joblib"), "--name", "moons")
    cli(module_api_url, "alias", "set", "moons", "production", "2")
    cli(module_api_url, "archive", "moons", "1")
    yield module_api_url


def bare_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The command with only the arguments given: no --url or --api-key added."""
    command = [sys.executable, "-m", "registry.client.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


ROWS = "[[0.5, 0.2]]"


def cases(url: str) -> list[tuple[list[str], list[str]]]:
    """(the command line, what its error must say) for each mistake the issue names."""
    key = ["--api-key", API_KEY]
    return [
        (
            ["--url", f"http://127.0.0.1:{closed_port()}", "list"],
            ["nothing is listening there", "`make run`", "--url URL or MODEL_REGISTRY_URL"],
        ),
        (
            ["--url", f"{url}/models", "list"],
            [f"--url takes the API's base URL, without /models: --url {url}"],
        ),
        (["--url", url, "show", "mons"], ["did you mean 'moons'?", "`model-registry list`"]),
        (
            ["--url", url, "show", "moons", "--version", "9"],
            ["moons has versions 1, 2", "`model-registry show moons`"],
        ),
        (
            ["--url", url, *key, "classify", "moons", "--version", "1", "--instances", ROWS],
            ["410 version_archived", "`model-registry restore moons 1` serves it again", ": 2"],
        ),
        (
            ["--url", url, *key, "classify", "moons", "--alias", "staging", "--instances", ROWS],
            [
                "the aliases of moons: production (version 2)",
                "`model-registry alias set moons ALIAS VERSION`",
            ],
        ),
        (
            ["--url", url, "classify", "moons", "--instances", ROWS],
            ["403", "pass --api-key KEY or set MODEL_REGISTRY_API_KEY"],
        ),
        (
            ["--url", url, "delete", "moons"],
            ["409 version_in_use", "production", "--force"],
        ),
    ]


def test_every_error_names_the_next_step_and_no_traceback(moons_registry: str) -> None:
    for argv, says in cases(moons_registry):
        done = bare_cli(*argv)

        assert done.returncode == 1, (argv, done.stderr)
        assert done.stdout == ""
        error, next_step = (
            done.stderr.splitlines() if done.stderr.count("\n") == 2 else (done.stderr, "")
        )
        assert error.startswith("error: ") and next_step.startswith("next: "), done.stderr
        for words in says:
            assert words in done.stderr, (argv, done.stderr)
        for raw in ("Traceback", "urlopen", "Errno", "HTTPError"):
            assert raw not in done.stderr, (argv, done.stderr)


def test_json_errors_carry_the_next_step_too(moons_registry: str) -> None:
    done = bare_cli("--url", moons_registry, "--json", "show", "mons")

    assert json.loads(done.stderr) == {
        "status": 404,
        "code": "model_not_found",
        "message": "no model named 'mons'",
        "next_step": "did you mean 'moons'? models here: 'moons' "
        "(`model-registry list` shows them all)",
    }


def test_the_python_client_says_the_next_step_as_a_call(moons_registry: str) -> None:
    client = RegistryClient(moons_registry, api_key=API_KEY)

    with pytest.raises(ApiError) as archived:
        client.predict("moons", numpy.array([[0.5, 0.2]]), version=1)
    with pytest.raises(ApiError) as unknown:
        client.show("moons", version=9)

    assert "client.restore('moons', 1) serves it again" in str(archived.value)
    assert archived.value.facts["active"] == [2]
    assert "moons has versions 1, 2 (client.show('moons'))" in str(unknown.value)


def test_global_flags_work_after_the_command(moons_registry: str) -> None:
    done = bare_cli("classify", "moons", "--instances", ROWS, "--url", moons_registry)
    assert done.returncode == 1 and "--api-key" in done.stderr

    done = bare_cli(
        "classify", "moons", "--instances", ROWS, "--api-key", API_KEY, "--url", moons_registry
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def many_rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = numpy.random.default_rng(0).normal(size=(30_000, 2))
    path = tmp_path_factory.mktemp("rows") / "rows.csv"
    pandas.DataFrame(rows, columns=["x", "y"]).to_csv(path, index=False)
    return path


def test_a_closed_pipe_ends_quietly(moons_registry: str, many_rows: Path) -> None:
    done = subprocess.run(
        [
            "bash",
            "-o",
            "pipefail",
            "-c",
            f"{sys.executable} -m registry.client.cli --url {moons_registry} --api-key {API_KEY} "
            f"classify moons --input {many_rows} | head -3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[0] == "moons version 2"


def test_output_writes_the_file_and_prints_one_line(
    moons_registry: str, many_rows: Path, tmp_path: Path
) -> None:
    output = tmp_path / "predictions.csv"
    done = cli(
        moons_registry,
        "classify",
        "moons",
        "--input",
        str(many_rows),
        "--probabilities",
        "--output",
        str(output),
    )

    assert done.stdout.splitlines() == [
        f"wrote 30,000 predictions of moons version 2 to {output} (columns: row, prediction, 0, 1)"
    ]
    written = pandas.read_csv(output)
    model = joblib.load(io.BytesIO(distinct_model_bytes(3)))  # version 2
    rows = pandas.read_csv(many_rows).to_numpy()
    assert numpy.array_equal(written["prediction"], model.predict(rows))
    assert numpy.array_equal(written[["0", "1"]], model.predict_proba(rows))
    # the notebook client sends a DataFrame by its columns, taken by position here
    served = RegistryClient(moons_registry, api_key=API_KEY).predict_proba(
        "moons", pandas.read_csv(many_rows)
    )
    assert numpy.array_equal(served.to_numpy(), model.predict_proba(rows))


def test_an_input_example_saved_by_excel_registers(moons_registry: str, tmp_path: Path) -> None:
    features, target = make_moons(n_samples=200, noise=0.3, random_state=0)
    model = LogisticRegression().fit(pandas.DataFrame(features, columns=["x", "y"]), target)
    (tmp_path / "named.joblib").write_bytes(joblib_of(model))
    (tmp_path / "example.csv").write_bytes(b"\xef\xbb\xbfx,y\r\n0.5,0.2\r\n1.5,-0.4\r\n\r\n")

    done = cli(
        moons_registry,
        "--json",
        "register",
        str(tmp_path / "named.joblib"),
        "--name",
        "excel",
        "--input-example",
        str(tmp_path / "example.csv"),
    )

    answer: dict[str, Any] = json.loads(done.stdout)
    assert answer["input_example"] == [{"x": 0.5, "y": 0.2}, {"x": 1.5, "y": -0.4}]


def test_a_mistake_in_a_later_batch_is_named_by_its_row_in_the_file(
    moons_registry: str, tmp_path: Path
) -> None:
    rows = numpy.random.default_rng(1).normal(size=(250, 2)).round(3).astype(object)
    rows[202, 1] = None  # an empty cell: this model takes no missing value
    pandas.DataFrame(rows, columns=["x", "y"]).to_csv(tmp_path / "rows.csv", index=False)

    done = cli(
        moons_registry,
        "classify",
        "moons",
        "--input",
        str(tmp_path / "rows.csv"),
        "--batch-rows",
        "100",
        check=False,
    )

    assert done.returncode == 1
    assert "row 202, column '1': a value is needed" in done.stderr, done.stderr
