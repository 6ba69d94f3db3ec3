"""Tree ensembles registered through the handlers are served from their compiled form."""

import json
from typing import Any

import numpy
import skops.io
from sklearn.datasets import load_diabetes, load_wine
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from tests.support.handlers import Invoke, artifact_body
from tests.support.models import joblib_of
from tests.support.registries import BUCKET


def _served(classify: Invoke, model: str, rows: Any, probabilities: bool = False) -> Any:
    body: dict[str, Any] = {"instances": numpy.asarray(rows).tolist()}
    if probabilities:
        body["probabilities"] = True
    status, answer = classify("classify", body=body, query={"model": model})
    assert status == 200, answer
    return answer


def test_the_blogs_forest_is_stored_compiled_and_served_exactly(
    register: Invoke, classify: Invoke, registry_on_moto: Any, moons_bytes: bytes, moons_model: Any
) -> None:
    status, manifest = register("register", body=artifact_body("moons", moons_bytes))

    assert status == 201
    assert manifest["serving_format"] == "compiled"
    assert manifest["serving_key"].endswith(".npz")
    stored = registry_on_moto.get_object(Bucket=BUCKET, Key=f"registry/{manifest['serving_key']}")
    assert stored["Body"].read()[:2] == b"PK"  # a zip of .npy arrays
    rows = numpy.random.default_rng(3).normal(scale=1.5, size=(300, 2))
    answer = _served(classify, "moons", rows, probabilities=True)
    assert numpy.array_equal(answer["predictions"], moons_model.predict(rows))
    assert numpy.array_equal(answer["probabilities"], moons_model.predict_proba(rows))


def test_a_skops_regressor_is_compiled_and_answers_scikit_learns_values(
    register: Invoke, classify: Invoke
) -> None:
    features, target = load_diabetes(return_X_y=True)
    model = HistGradientBoostingRegressor(max_iter=40, random_state=0).fit(features, target)
    body = artifact_body("diabetes", skops.io.dumps(model), input_example=features[:3].tolist())

    status, manifest = register("register", body=body)

    assert (status, manifest["format"], manifest["serving_format"]) == (201, "skops", "compiled")
    answer = _served(classify, "diabetes", features)
    # JSON carries a float64 exactly (shortest repr): the values are the model's own bits.
    assert numpy.array_equal(answer["predictions"], model.predict(features))


def test_a_joblib_model_outside_the_tree_families_is_served_from_a_skops_copy(
    register: Invoke, classify: Invoke
) -> None:
    features, target = load_wine(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(features, target)

    status, manifest = register("register", body=artifact_body("wine", joblib_of(model)))

    assert (status, manifest["serving_format"]) == (201, "skops")
    assert manifest["serving_key"].endswith(".skops")
    answer = _served(classify, "wine", features[:40])
    assert json.dumps(answer["predictions"]) == json.dumps(model.predict(features[:40]).tolist())
