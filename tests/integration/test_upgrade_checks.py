"""Upgrade checks on this runtime's own line: the check rows a registration keeps, and what a
check says of versions it does not move. (Moving a version from an older line is tested
end to end with the 1.8 line: tests/e2e/test_runtime_lines.py.)"""

import math

import pytest
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from registry.errors import RuntimeUnsupportedError
from registry.inputs import RequestRows, model_input
from registry.lines import runtime_minor
from registry.registering.registration import Registrar
from registry.registering.upgrade import LineUpgrader, same_bits
from tests.support.models import joblib_of


@pytest.fixture
def upgrader(registrar: Registrar) -> LineUpgrader:
    return LineUpgrader(registrar.registry, {runtime_minor(): registrar.validator}, registrar.lines)


def test_a_version_keeps_its_check_rows_and_the_models_own_answers_on_them(
    registrar: Registrar,
) -> None:
    features, target = load_wine(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, target)
    example = features[:3].tolist()

    manifest = registrar.register("wine", joblib_of(model), input_example=example).info.manifest

    check = manifest.check
    assert check is not None and check.rows[:3] == example and len(check.rows) == 3 + 32
    rows = model_input(RequestRows(check.rows), manifest.signature)
    assert check.predictions == model.predict(rows).tolist()
    assert check.probabilities == model.predict_proba(rows).tolist()
    assert manifest.validated_line == runtime_minor()


def test_a_check_moves_nothing_already_on_the_line_or_compiled_and_names_the_lines_in_use(
    registrar: Registrar, upgrader: LineUpgrader
) -> None:
    features, target = load_wine(return_X_y=True)
    linear = LogisticRegression(max_iter=5000).fit(features, target)
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(features, target)
    registrar.register("linear", joblib_of(linear))
    registrar.register("forest", joblib_of(forest))
    line = runtime_minor()

    on_line = upgrader.check_version("linear", 1, line)
    compiled = upgrader.check_version("forest", 1, line)

    assert (on_line.line, on_line.moved, on_line.reason) == (
        line,
        False,
        f"already served by the {line} line",
    )
    assert (compiled.line, compiled.moved) == (None, False)
    assert compiled.reason.startswith("a compiled form")
    (use,) = upgrader.lines_in_use()
    assert (use.line, use.served, use.versions) == (line, True, [("linear", 1)])
    with pytest.raises(RuntimeUnsupportedError, match=r"does not serve a scikit-learn 1\.5 line"):
        upgrader.check_version("linear", 1, "1.5")


def test_answers_agree_only_to_the_last_bit() -> None:
    assert same_bits([1, "a", [0.1, 0.9]], [1, "a", [0.1, 0.9]])
    assert not same_bits([0.0], [-0.0])
    assert not same_bits([0.1], [math.nextafter(0.1, 1.0)])
    assert not same_bits([1], [1.0])  # an integer label is not a float
    assert not same_bits([[0.5, 0.5]], [[0.5]])
