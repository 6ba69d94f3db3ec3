"""The model-registry CLI against scripts/local_api.py: every subcommand, and the upload flow."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy
import skops.io
from sklearn.linear_model import LogisticRegression

from registry.registry import ModelRegistry
from registry.store import LocalStore
from tests.support.http import API_KEY, cli, cli_json
from tests.support.models import distinct_model_bytes
from tests.support.registries import register_as_before


def test_register_inline_then_again_is_retry_safe(
    api_url: str, tmp_path: Path, moons_bytes: bytes
) -> None:
    path = tmp_path / "moons.joblib"
    path.write_bytes(moons_bytes)

    first = cli_json(
        api_url,
        "register",
        str(path),
        "--name",
        "moons",
        "--tag",
        "team=ml",
        "--metric",
        "accuracy=0.93",
        "--description",
        "blog",
    )
    again = cli_json(api_url, "register", str(path), "--name", "moons")

    assert (first["version"], first["created"]) == (1, True)
    assert (first["tags"], first["metrics"]) == ({"team": "ml"}, {"accuracy": 0.93})
    assert (again["version"], again["created"]) == (1, False)


def test_a_large_artifact_goes_through_the_upload_url(
    each_store_api_url: str, tmp_path: Path, moons_bytes: bytes
) -> None:
    path = tmp_path / "moons.joblib"
    path.write_bytes(moons_bytes)

    result = cli(
        each_store_api_url, "register", str(path), "--name", "moons", "--inline-limit", "100"
    )
    shown = cli_json(each_store_api_url, "show", "moons", "--version", "1")

    assert result.stderr == ""  # stderr is no terminal here: no progress bar to fill a log
    assert "created            True" in result.stdout
    assert shown["size_bytes"] == len(moons_bytes)


def test_a_skops_file_registers_inline_and_by_upload_and_classifies_exactly(
    api_url: str, tmp_path: Path, moons_model: Any
) -> None:
    path = tmp_path / "moons.skops"
    path.write_bytes(skops.io.dumps(moons_model))

    inline = cli_json(api_url, "register", str(path), "--name", "moons")
    uploaded = cli_json(api_url, "register", str(path), "--name", "other", "--inline-limit", "100")
    rows = numpy.random.default_rng(1).normal(size=(50, 2))
    answer = cli_json(api_url, "classify", "other", "--instances", json.dumps(rows.tolist()))

    assert (inline["format"], inline["serving_format"], inline["created"]) == (
        "skops",
        "compiled",  # a forest: served from numpy arrays, nothing unpickled
        True,
    )
    assert uploaded["format"] == "skops" and uploaded["artifact_key"].endswith(".skops")
    assert answer["predictions"] == moons_model.predict(rows).tolist()


def test_list_show_alias_classify_and_archive(
    api_url: str, tmp_path: Path, moons_bytes: bytes, moons_model: Any
) -> None:
    for index, artifact in enumerate([moons_bytes, distinct_model_bytes(3)]):
        (tmp_path / f"{index}.joblib").write_bytes(artifact)
        cli(api_url, "register", str(tmp_path / f"{index}.joblib"), "--name", "moons")

    assert cli_json(api_url, "alias", "set", "moons", "production", "1")["version"] == 1
    listing = cli_json(api_url, "list")
    assert listing["models"] == [
        {"name": "moons", "latest_version": 2, "version_count": 2, "aliases": {"production": 1}}
    ]
    table = cli(api_url, "show", "moons").stdout
    assert "moons: 2 versions, latest active 2, aliases production=1" in table
    rows = [[0.5, 0.2], [1.5, -0.4]]
    answer = cli_json(
        api_url,
        "classify",
        "moons",
        "--alias",
        "production",
        "--instances",
        json.dumps(rows),
        "--probabilities",
    )
    assert answer["predictions"] == moons_model.predict(numpy.array(rows)).tolist()
    assert answer["probabilities"] == moons_model.predict_proba(numpy.array(rows)).tolist()

    refused = cli(api_url, "archive", "moons", "1", check=False)
    assert refused.returncode == 1
    assert "409 version_in_use" in refused.stderr
    assert cli_json(api_url, "alias", "rm", "moons", "production")["version"] == 1
    assert cli_json(api_url, "archive", "moons", "1")["status"] == "archived"


def test_cli_errors_exit_1_with_the_code(api_url: str, tmp_path: Path) -> None:
    missing = cli(api_url, "show", "nobody", check=False)
    assert (missing.returncode, missing.stderr.splitlines()) == (
        1,
        [
            "error: 404 model_not_found: no model named 'nobody'",
            "next: no model is registered yet: `model-registry register FILE --name nobody`",
        ],
    )
    unreadable = cli(api_url, "register", str(tmp_path / "none.joblib"), "--name", "m", check=False)
    assert unreadable.returncode == 2
    assert "cannot read" in unreadable.stderr


def test_the_smoke_script_passes_against_the_local_api(each_store_api_url: str) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "smoke.py"
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--url",
            each_store_api_url,
            "--api-key",
            API_KEY,
            "--name",
            "smoke",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke test passed" in result.stdout
    assert cli_json(each_store_api_url, "show", "smoke", "--version", "1")["status"] == "archived"


def test_the_smoke_script_fails_when_the_api_key_is_wrong(api_url: str) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "smoke.py"
    result = subprocess.run(
        [sys.executable, str(script), "--url", api_url, "--api-key", "wrong"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "403 forbidden" in result.stderr


def test_edit_restore_delete_and_runtime_commands(
    module_api_url: str, tmp_path: Path, moons_bytes: bytes
) -> None:
    path = tmp_path / "moons.joblib"
    path.write_bytes(moons_bytes)
    cli(module_api_url, "register", str(path), "--name", "cli-life", "--tag", "team=ml")

    edited = cli_json(
        module_api_url,
        "edit",
        "cli-life",
        "1",
        "--description",
        "edited",
        "--metric",
        "auc=0.9",
        "--remove-tag",
        "team",
    )
    cli(module_api_url, "archive", "cli-life", "1")
    restored = cli_json(module_api_url, "restore", "cli-life", "1")
    cli(module_api_url, "alias", "set", "cli-life", "production", "1")
    refused = cli(module_api_url, "delete", "cli-life", check=False)
    deleted = cli_json(module_api_url, "delete", "cli-life", "--force")
    runtime = cli(module_api_url, "runtime")
    nothing = cli(module_api_url, "edit", "cli-life", "1", check=False)

    assert (edited["description"], edited["tags"], edited["metrics"]) == (
        "edited",
        {},
        {"auc": 0.9},
    )
    assert restored["status"] == "active"
    assert refused.returncode == 1 and "409 version_in_use" in refused.stderr
    assert "force" in refused.stderr
    assert deleted["deleted_through"] == 1
    assert "scikit_learn" in runtime.stdout
    assert nothing.returncode == 2 and "edit needs --description" in nothing.stderr


def test_convert_gives_versions_registered_before_a_copy_predict_loads_without_unpickling(
    api_url: str, server_env: dict[str, str]
) -> None:
    features = numpy.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(features, [0, 1, 0, 1])
    registry = ModelRegistry(LocalStore(server_env["REGISTRY_URI"]))
    register_as_before(registry, "linear", model)
    refused = cli(api_url, "classify", "linear", "--instances", "[[1.5]]", check=False)
    assert "version_needs_conversion" in refused.stderr
    assert "model-registry convert linear 1" in refused.stderr

    summary = cli_json(api_url, "convert", "linear")
    again = cli_json(api_url, "convert", "linear", "1")

    assert summary == {"name": "linear", "converted": [1], "unchanged": [], "refused": {}}
    assert again["unchanged"] == [1]
    assert cli_json(api_url, "show", "linear", "--version", "1")["serving_format"] == "skops"
    answer = cli_json(api_url, "classify", "linear", "--instances", "[[1.5], [-2.0]]")
    assert answer["predictions"] == model.predict([[1.5], [-2.0]]).tolist()
