"""The Python client as a notebook uses it, against the local server over HTTP."""

import io
import sys

import numpy
import pandas
import pytest

from registry.client import ApiError, RegistryClient
from registry.lines import pickled_sklearn_version
from tests.support.families import family
from tests.support.models import joblib_of


@pytest.fixture
def client(module_api_url: str) -> RegistryClient:
    from tests.support.http import API_KEY

    return RegistryClient(module_api_url, api_key=API_KEY)


def test_a_dataframe_pipeline_registers_from_memory_and_predicts_exactly(
    client: RegistryClient,
) -> None:
    wine = family("column_transformer_on_strings")
    frame = wine.test_rows.set_axis(range(100, 100 + len(wine.test_rows)))

    registered = client.register(
        wine.model, "notebook-wine", description="from a notebook", input_example=frame.head(3)
    )
    predictions = client.predict("notebook-wine", frame, version=registered["version"])
    probabilities = client.predict_proba("notebook-wine", frame)

    assert registered["created"] is True
    assert isinstance(predictions, pandas.Series)
    assert predictions.index.equals(frame.index)
    assert numpy.array_equal(predictions.to_numpy(), wine.model.predict(frame))
    assert list(probabilities.columns) == wine.model.classes_.tolist()
    assert numpy.array_equal(probabilities.to_numpy(), wine.model.predict_proba(frame))


def test_missing_values_in_a_dataframe_reach_the_model_as_missing(
    client: RegistryClient,
) -> None:
    iris = family("imputing_pipeline")
    assert iris.test_rows.isna().any().any()

    client.register(iris.model, "notebook-iris", input_example=iris.test_rows.head(5))

    predictions = client.predict("notebook-iris", iris.test_rows)
    assert numpy.array_equal(predictions.to_numpy(), iris.model.predict(iris.test_rows))


def test_arrays_give_numpy_answers_for_regressors(client: RegistryClient) -> None:
    forest = family("forest_regressor")

    client.register(forest.model, "notebook-forest")
    predictions = client.predict("notebook-forest", forest.test_rows)

    assert isinstance(predictions, numpy.ndarray)
    assert numpy.array_equal(predictions, forest.model.predict(forest.test_rows))


def test_identical_large_bytes_are_not_uploaded_twice(
    module_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = RegistryClient(module_api_url, inline_limit=0)
    model = family("linear_regression").model
    uploads: list[int] = []
    real_put = client.put_upload
    monkeypatch.setattr(
        client,
        "put_upload",
        lambda url, data, progress=None: uploads.append(len(data)) or real_put(url, data, progress),
    )

    first = client.register(model, "notebook-linear", description="first")
    again = client.register(model, "notebook-linear", description="changed")

    assert (first["created"], again["created"], again["version"]) == (True, False, first["version"])
    assert len(uploads) == 1
    assert "PATCH /models/notebook-linear/versions/1" in again["note"]


def test_an_upload_shows_its_progress_on_a_terminal_only(
    module_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    client = RegistryClient(module_api_url, inline_limit=0)
    for stderr, name in ((Terminal(), "notebook-bar"), (io.StringIO(), "notebook-no-bar")):
        monkeypatch.setattr(sys, "stderr", stderr)
        client.register(joblib_of(family("linear_regression").model), name)
        monkeypatch.undo()
        shown = stderr.getvalue()
        assert ("uploading [" in shown and "100%" in shown) == isinstance(stderr, Terminal)


def test_bytes_pickled_with_a_scikit_learn_no_line_serves_are_refused_naming_the_lines(
    client: RegistryClient,
) -> None:
    import sklearn

    artifact = joblib_of(family("linear_regression").model)
    current = sklearn.__version__.encode()
    assert pickled_sklearn_version(artifact) == sklearn.__version__
    older = b"0" + current[1:]
    forged = artifact.replace(bytes([len(current)]) + current, bytes([len(older)]) + older)

    with pytest.raises(ApiError) as refused:
        client.register(forged, "notebook-old")

    assert (refused.value.status, refused.value.code) == (422, "runtime_unsupported")
    newest = ".".join(sklearn.__version__.split(".")[:2])
    assert f"serves line {newest}" in refused.value.message
    assert f"pip install 'scikit-learn=={newest}.*'" in refused.value.message
    with pytest.raises(ApiError, match="model_not_found"):
        client.show("notebook-old")


def test_the_whole_lifecycle_from_python(client: RegistryClient) -> None:
    model = family("linear_regression").model
    client.register(model, "notebook-life")

    client.edit("notebook-life", 1, description="edited", tags={"stage": "dev"})
    client.set_alias("notebook-life", "production", 1)
    client.delete_alias("notebook-life", "production")
    client.archive("notebook-life", 1)
    restored = client.restore("notebook-life", 1)
    runtime = client.runtime()
    deleted = client.delete_model("notebook-life")

    assert (restored["status"], restored["description"], restored["tags"]) == (
        "active",
        "edited",
        {"stage": "dev"},
    )
    assert set(runtime) >= {"python", "scikit_learn", "numpy", "joblib"}
    assert deleted["deleted_through"] == 1
    assert "notebook-life" not in [model["name"] for model in client.list_models()["models"]]
