"""Runtime lines: models trained with an older scikit-learn (the 1.8 and 1.7 lines make test
installs, .venv-lines/<minor>) are validated in that line's own interpreter, through the local
server.

A tree ensemble of any line compiles to the pickle-free form the front serves without
scikit-learn; any other model of an older line is predicted by that line's own process, which
the front routes the resolved version to. Each answers exactly as in its own scikit-learn. A
model from a scikit-learn no line serves is a 422 that names the lines.
"""

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy
import pytest

from registry.manifest import manifest_key
from tests.support.http import API_KEY, cli, cli_json, local_api_for, request
from tests.support.lines import line_python, trained_in


@pytest.fixture(scope="module")
def trained_in_line() -> dict[str, Any]:
    return trained_in(line_python())


@pytest.fixture(scope="module")
def trained_in_17() -> dict[str, Any]:
    return trained_in(line_python("1.7"))


@pytest.fixture(scope="module")
def lines_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lines") / "registry"


@pytest.fixture(scope="module")
def lines_url(lines_registry: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "REGISTRY_URI": str(lines_registry),
        "RUNTIME_LINES": f"1.8={line_python('1.8')} 1.7={line_python('1.7')}",
    }
    yield from local_api_for(env, "--api-key", API_KEY)


def register(url: str, name: str, artifact: str, **fields: Any) -> tuple[int, Any]:
    return request(f"{url}/models/{name}/versions", body={"artifact": artifact, **fields})


def predict(url: str, name: str, rows: list[Any]) -> Any:
    status, answer = request(
        f"{url}/predict?model={name}",
        body={"instances": rows, "probabilities": True},
        headers={"x-api-key": API_KEY},
    )
    assert status == 200, answer
    return answer


@pytest.mark.parametrize("form", ["joblib", "skops"])
def test_a_forest_from_the_older_line_is_served_compiled_as_its_own_scikit_learn_answers(
    lines_url: str, trained_in_line: dict[str, Any], form: str
) -> None:
    forest = trained_in_line["forest"]
    fields = {"runtime": trained_in_line["sklearn"]} if form == "skops" else {}

    status, manifest = register(lines_url, f"forest-{form}", forest[form], **fields)

    assert status == 201, manifest
    assert manifest["runtime"]["scikit_learn"] == trained_in_line["sklearn"] == "1.8.0"
    assert manifest["serving_format"] == "compiled"
    answer = predict(lines_url, f"forest-{form}", trained_in_line["rows"])
    assert numpy.array_equal(answer["predictions"], forest["predictions"])
    assert numpy.array_equal(answer["probabilities"], forest["probabilities"])


@pytest.mark.parametrize(("name", "rows"), [("linear", "rows"), ("frame", "records")])
def test_another_model_of_the_older_line_is_predicted_by_that_line_exactly(
    lines_url: str, trained_in_line: dict[str, Any], name: str, rows: str
) -> None:
    model = trained_in_line[name]

    status, manifest = register(lines_url, name, model["joblib"])

    assert status == 201, manifest
    assert (manifest["runtime"]["scikit_learn"], manifest["serving_format"]) == ("1.8.0", "skops")
    answer = predict(lines_url, name, trained_in_line[rows])
    assert answer["line"] == "1.8"
    assert numpy.array_equal(answer["predictions"], model["predictions"])
    assert numpy.array_equal(answer["probabilities"], model["probabilities"])
    again = predict(lines_url, name, trained_in_line[rows][:2])  # the line's own cache
    assert again["predictions"] == model["predictions"][:2]


def test_the_newest_lines_models_and_older_lines_forests_are_served_by_the_front(
    lines_url: str, trained_in_line: dict[str, Any]
) -> None:
    register(lines_url, "front-forest", trained_in_line["forest"]["joblib"])

    answer = predict(lines_url, "front-forest", trained_in_line["rows"])

    assert "line" not in answer


def test_a_file_is_validated_on_the_line_it_records_and_one_no_line_serves_names_the_lines(
    lines_url: str, trained_in_line: dict[str, Any]
) -> None:
    skops_file = trained_in_line["forest"]["skops"]
    status, manifest = register(lines_url, "declared", skops_file, runtime="1.9.1")
    assert status == 201, manifest
    assert manifest["runtime"]["scikit_learn"] == "1.8.0"  # what the file records wins

    pickled = base64.b64decode(trained_in_line["linear"]["joblib"])
    forged = pickled.replace(b"\x8c\x051.8.0", b"\x8c\x051.6.1")
    assert forged != pickled
    status, answer = register(lines_url, "old", base64.b64encode(forged).decode())

    assert (status, answer["code"]) == (422, "runtime_unsupported"), answer
    assert (
        "saved with scikit-learn 1.6.1; this registry serves the lines 1.9, 1.8 and 1.7"
        in (answer["message"])
    )


def test_a_restored_version_is_served_by_its_line_at_once(
    lines_url: str, trained_in_line: dict[str, Any]
) -> None:
    """The line predicts what the front resolved: it keeps no reading of archived versions."""
    linear = trained_in_line["linear"]
    assert register(lines_url, "restored", linear["joblib"])[0] == 201
    assert register(lines_url, "restored", linear["skops"], runtime="1.8.0")[0] == 201
    assert request(f"{lines_url}/models/restored/versions/2", method="DELETE")[0] == 200
    assert predict(lines_url, "restored", trained_in_line["rows"])["version"] == 1

    restored = request(f"{lines_url}/models/restored/versions/2/restore", method="POST")
    answer = predict(lines_url, "restored", trained_in_line["rows"])

    assert restored[0] == 200
    assert (answer["version"], answer["line"]) == (2, "1.8")
    assert numpy.array_equal(answer["predictions"], linear["predictions"])


def test_a_compressed_joblib_file_is_validated_on_the_line_its_loaded_version_names(
    lines_url: str, trained_in_line: dict[str, Any]
) -> None:
    linear = trained_in_line["linear"]
    assert b"1.8.0" not in base64.b64decode(linear["compressed"])

    status, manifest = register(lines_url, "compressed", linear["compressed"], runtime="1.9.1")

    assert status == 201, manifest
    assert manifest["runtime"]["scikit_learn"] == "1.8.0"
    answer = predict(lines_url, "compressed", trained_in_line["rows"])
    assert answer["line"] == "1.8"
    assert numpy.array_equal(answer["probabilities"], linear["probabilities"])


def test_an_upgrade_check_moves_a_version_that_answers_the_same_and_keeps_those_that_do_not(
    lines_url: str, lines_registry: Path, trained_in_line: dict[str, Any]
) -> None:
    """Three 1.8 models. A LogisticRegression pipeline answers the same on 1.9. The DataFrame
    pipeline's HistGradientBoosting does not load on 1.9 at all (its loss module moved). The
    third version's check answers, as its manifest keeps them, are made to differ from what
    any scikit-learn answers, as a newer line that changed a model's answers would."""
    linear, frame = trained_in_line["linear"], trained_in_line["frame"]
    assert register(lines_url, "upgraded", linear["joblib"])[0] == 201
    assert register(lines_url, "unloadable", frame["joblib"])[0] == 201
    status, _ = register(lines_url, "answers-differ", linear["skops"], runtime="1.8.0")
    assert status == 201
    path = lines_registry / manifest_key("answers-differ", 1)
    manifest = json.loads(path.read_text())
    checked = manifest["check"]
    assert len(checked["rows"]) > 1 and len(checked["predictions"]) == len(checked["rows"])
    checked["probabilities"][1][0] = numpy.nextafter(checked["probabilities"][1][0], 2.0)
    path.write_text(json.dumps(manifest))
    assert predict(lines_url, "upgraded", trained_in_line["rows"])["line"] == "1.8"

    # This module's other models stay where they are: the check names its three.
    models = ["--model", "upgraded", "--model", "unloadable", "--model", "answers-differ"]
    report = cli_json(lines_url, "runtime", "check", "--line", "1.9", *models)
    text = cli(lines_url, "runtime", "check", "--line", "1.9", *models).stdout

    moves = {check["name"]: check for check in report["versions"]}
    assert (moves["upgraded"]["line"], moves["upgraded"]["moved"]) == ("1.8", True)
    assert moves["upgraded"]["reason"].startswith("the same answers on all")
    assert (moves["unloadable"]["line"], moves["unloadable"]["moved"]) == ("1.8", False)
    assert moves["unloadable"]["reason"] == (
        "the 1.9 line refused it: the artifact is not a joblib or skops file that loads with "
        "scikit-learn 1.9.1"
    )
    assert moves["answers-differ"]["reason"] == (
        f"other probabilities on check row 2 of {len(checked['rows'])} on the 1.9 line than "
        "on the 1.8 line"
    )
    uses = {use["line"]: use["versions"] for use in report["lines"]}
    assert {"name": "unloadable", "version": 1} in uses["1.8"]
    assert {"name": "answers-differ", "version": 1} in uses["1.8"]
    assert {"name": "upgraded", "version": 1} in uses["1.9"]
    assert {"name": "upgraded", "version": 1} not in uses["1.8"]
    # Checked again, the moved version is not checked twice; the others are, and stay.
    assert "0 of 2 versions move" in text and "\nupgraded " not in text
    assert "upgraded:1" in text.split("\n1.9 ")[1].split("\n")[0]
    # The moved version is served by the front, from the copy the 1.9 line made, exactly as
    # scikit-learn 1.8 answers; the others are still the 1.8 line's.
    answer = predict(lines_url, "upgraded", trained_in_line["rows"])
    assert "line" not in answer
    assert numpy.array_equal(answer["predictions"], linear["predictions"])
    assert numpy.array_equal(answer["probabilities"], linear["probabilities"])
    assert predict(lines_url, "unloadable", trained_in_line["records"])["line"] == "1.8"
    shown = request(f"{lines_url}/models/upgraded/versions/1", method="GET")[1]
    assert (shown["line"], shown["serving_line"]) == ("1.8", "1.9")
    assert "check" not in shown


@pytest.mark.parametrize(
    ("name", "rows"), [("forest", "rows"), ("linear", "rows"), ("frame", "records")]
)
def test_the_17_lines_models_answer_exactly_as_scikit_learn_17_does(
    lines_url: str, trained_in_17: dict[str, Any], name: str, rows: str
) -> None:
    model = trained_in_17[name]

    status, manifest = register(lines_url, f"seventeen-{name}", model["joblib"])
    answer = predict(lines_url, f"seventeen-{name}", trained_in_17[rows])

    assert status == 201, manifest
    assert (manifest["runtime"]["scikit_learn"], manifest["line"]) == ("1.7.2", "1.7")
    if name == "forest":  # compiled, served by the front
        assert manifest["serving_format"] == "compiled" and manifest["serving_line"] is None
        assert "line" not in answer
    else:
        assert answer["line"] == "1.7"
    assert numpy.array_equal(answer["predictions"], model["predictions"])
    assert numpy.array_equal(answer["probabilities"], model["probabilities"])


def test_a_17_version_moves_to_the_18_line_and_answers_there_as_it_did(
    lines_url: str, trained_in_17: dict[str, Any]
) -> None:
    """An upgrade check to a line that is not the newest: the 1.8 line then predicts it, from
    the copy scikit-learn 1.8 made."""
    linear = trained_in_17["linear"]
    assert register(lines_url, "seventeen-moves", linear["joblib"])[0] == 201

    report = cli_json(lines_url, "runtime", "check", "--line", "1.8", "--model", "seventeen-moves")
    answer = predict(lines_url, "seventeen-moves", trained_in_17["rows"])

    ((check,),) = [report["versions"]]
    assert (check["line"], check["target"], check["moved"]) == ("1.7", "1.8", True), check
    assert answer["line"] == "1.8"
    assert numpy.array_equal(answer["predictions"], linear["predictions"])
    assert numpy.array_equal(answer["probabilities"], linear["probabilities"])
