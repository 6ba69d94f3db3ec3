"""Registration, resolution and integrity checks, against both stores."""

import pickle
from pathlib import Path
from typing import Any

import numpy
import pytest
import sklearn
import sklearn.base
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression

from registry.artifacts import load_estimator
from registry.config import PicklePolicy
from registry.errors import (
    IntegrityError,
    InvalidArtifactError,
    InvalidNameError,
    ModelNotFoundError,
    RuntimeUnsupportedError,
    StoreUnavailableError,
    VersionNeedsConversionError,
    VersionNotFoundError,
)
from registry.manifest import ArtifactFormat, manifest_key, sha256_hex
from registry.registering.registration import Registrar
from registry.registry import ModelRegistry
from registry.serving.predictor import load_model
from registry.store.base import ObjectStore
from tests.support.attack import CreatesFileWhenUnpickled
from tests.support.models import distinct_model_bytes, joblib_of
from tests.support.registries import registrar_for
from tests.support.resolving import resolved


def test_first_registration_gets_version_one_and_a_complete_manifest(
    registry: ModelRegistry, moons_bytes: bytes, registrar: Registrar
) -> None:
    registration = registrar.register(
        "moons", moons_bytes, description="blog", tags={"team": "ml"}, metrics={"auc": 0.9}
    )
    manifest = registration.info.manifest

    assert registration.created is True
    assert manifest.version == 1
    assert manifest.has_predict_proba is True
    assert manifest.metrics == {"auc": 0.9}
    assert manifest.sha256 == sha256_hex(moons_bytes)
    assert manifest.size_bytes == len(moons_bytes)
    assert manifest.estimator_class == "sklearn.ensemble._forest.RandomForestClassifier"
    assert manifest.n_features_in == 2
    assert manifest.feature_names is None
    assert manifest.classes == [0, 1]
    assert manifest.runtime.scikit_learn == sklearn.__version__
    assert manifest.runtime.numpy == numpy.__version__
    assert (manifest.description, manifest.tags) == ("blog", {"team": "ml"})
    assert registry.store.get(manifest.artifact_key) == moons_bytes
    assert registry.get_manifest("moons", 1) == manifest


def test_versions_count_up_per_model_name(
    registry: ModelRegistry, moons_bytes: bytes, registrar: Registrar
) -> None:
    versions = [
        registrar.register("moons", distinct_model_bytes(seed)).info.manifest.version
        for seed in range(3)
    ]
    other = registrar.register("other", distinct_model_bytes(1)).info.manifest

    assert versions == [1, 2, 3]
    assert other.version == 1
    assert registry.list_versions("moons") == [1, 2, 3]
    assert registry.latest_active_version("moons") == 3


def test_a_version_taken_by_another_writer_is_skipped_not_overwritten(
    registry: ModelRegistry, moons_bytes: bytes, registrar: Registrar
) -> None:
    registrar.register("moons", moons_bytes)
    # Another writer listed before us and committed version 2 first.
    real_list_versions = registry.list_versions
    registry.store.create(manifest_key("moons", 2), b'{"written": "by someone else"}')
    registry.list_versions = lambda name: [1]  # type: ignore[method-assign]

    manifest = registrar.register("moons", distinct_model_bytes(2)).info.manifest

    registry.list_versions = real_list_versions  # type: ignore[method-assign]
    assert manifest.version == 3
    assert registry.store.get(manifest_key("moons", 2)) == b'{"written": "by someone else"}'


def test_feature_names_are_recorded_when_the_model_was_fitted_with_them(
    registry: ModelRegistry,
    registrar: Registrar,
) -> None:
    model = LinearRegression().fit([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]], [0.0, 1.0, 2.0])
    # What scikit-learn stores after fitting on a DataFrame with these columns.
    model.feature_names_in_ = numpy.array(["height", "width"], dtype=object)

    manifest = registrar.register("sizes", joblib_of(model)).info.manifest

    assert manifest.feature_names == ["height", "width"]
    assert manifest.classes is None
    assert manifest.n_features_in == 2


@pytest.mark.parametrize(
    ("artifact", "error", "message"),
    [
        (b"not a joblib file", InvalidArtifactError, "not a joblib or skops file"),
        (joblib_of({"weights": [1, 2]}), InvalidArtifactError, "not an estimator with predict"),
        (joblib_of(RandomForestClassifier()), InvalidArtifactError, "unfitted"),
    ],
    ids=["not-joblib", "not-an-estimator", "unfitted"],
)
def test_invalid_artifacts_are_refused_and_nothing_is_stored(
    registry: ModelRegistry,
    artifact: bytes,
    error: type[Exception],
    message: str,
    registrar: Registrar,
) -> None:
    with pytest.raises(error, match=message):
        registrar.register("moons", artifact)
    assert list(registry.store.list_keys("models/")) == []


def test_an_artifact_pickled_by_another_scikit_learn_version_is_refused(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch, registrar: Registrar
) -> None:
    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "1.5.2")
        old_artifact = joblib_of(model)

    with pytest.raises(RuntimeUnsupportedError) as refused:
        registrar.register("linear", old_artifact)

    line = ".".join(sklearn.__version__.split(".")[:2])
    assert refused.value.message == (
        f"the model was saved with scikit-learn 1.5.2; this registry serves line {line}: "
        f"save it again with scikit-learn {line} (pip install 'scikit-learn=={line}.*')"
    )
    assert list(registry.store.list_keys("models/")) == []


@pytest.mark.parametrize("name", ["", "Upper", "../escape", "a/b", "-lead", "x" * 65, "spa ce"])
def test_invalid_names_are_refused_before_any_io(
    registry: ModelRegistry, moons_bytes: bytes, name: str, registrar: Registrar
) -> None:
    with pytest.raises(InvalidNameError):
        registrar.register(name, moons_bytes)
    assert list(registry.store.list_keys("")) == []


def test_unknown_models_and_versions_are_told_apart(
    registry: ModelRegistry, moons_bytes: bytes, registrar: Registrar
) -> None:
    registrar.register("moons", moons_bytes)
    with pytest.raises(ModelNotFoundError):
        resolved(registry, "nobody")
    with pytest.raises(ModelNotFoundError):
        registry.get_manifest("nobody", 1)
    with pytest.raises(VersionNotFoundError):
        registry.get_manifest("moons", 2)
    assert resolved(registry, "moons") == 1


class FailingCreates:
    """The real store, except that committing a manifest fails (a crash or an S3 fault)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.store, name)

    def create(self, key: str, data: bytes) -> bool:
        if "/versions/" in key:
            raise StoreUnavailableError("injected failure")
        return self.store.create(key, data)


def test_a_registration_that_fails_before_its_manifest_leaves_no_visible_version(
    store: ObjectStore, moons_bytes: bytes
) -> None:
    failing = ModelRegistry(FailingCreates(store))  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailableError):
        registrar_for(failing).register("moons", moons_bytes)

    registry = ModelRegistry(store)
    assert registry.list_versions("moons") == []
    with pytest.raises(ModelNotFoundError):
        resolved(registry, "moons")
    assert registrar_for(registry).register("moons", moons_bytes).info.manifest.version == 1


@pytest.mark.parametrize("tampered", ["serving_key", "artifact_key"])
def test_tampered_stored_bytes_are_refused_without_being_unpickled(
    registry: ModelRegistry, moons_bytes: bytes, tmp_path: Path, tampered: str, registrar: Registrar
) -> None:
    manifest = registrar.register("moons", moons_bytes).info.manifest
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(CreatesFileWhenUnpickled(marker))
    registry.store.put(getattr(manifest, tampered), payload)

    with pytest.raises(IntegrityError, match="does not match its sha256"):
        if tampered == "serving_key":
            load_model(registry, manifest)  # what predict loads
        else:
            registry.read_artifact(manifest)
    assert not marker.exists()

    # The payload really is harmful when loaded, so the check above can fail.
    load_estimator(payload, ArtifactFormat.JOBLIB)
    assert marker.exists()


@pytest.mark.parametrize("pointer", ["serving_key", "artifact_key"])
def test_a_manifest_pointing_at_another_object_is_refused(
    registry: ModelRegistry, moons_bytes: bytes, pointer: str, registrar: Registrar
) -> None:
    manifest = registrar.register("moons", moons_bytes).info.manifest
    other = registrar.register("other", distinct_model_bytes(3)).info.manifest
    redirected = manifest.model_copy(update={pointer: getattr(other, pointer)})

    with pytest.raises(IntegrityError, match="unexpected object"):
        if pointer == "serving_key":
            load_model(registry, redirected)
        else:
            registry.read_artifact(redirected)


def test_a_joblib_version_without_a_pickle_free_copy_is_served_only_under_allow_unsafe(
    registry: ModelRegistry, moons_bytes: bytes, moons_model: Any, registrar: Registrar
) -> None:
    """A version registered before serving copies were skops or compiled: predict will not
    unpickle it, and says how to convert it; under allow-unsafe it loads its artifact."""
    manifest = registrar.register("moons", moons_bytes).info.manifest
    older = manifest.model_copy(update={"serving_key": None, "serving_sha256": None})

    with pytest.raises(VersionNeedsConversionError, match="model-registry convert moons 1"):
        load_model(registry, older)

    rows = numpy.array([[0.5, 0.2]])
    unsafe = load_model(registry, older, PicklePolicy.ALLOW_UNSAFE)
    numpy.testing.assert_array_equal(unsafe.predict(rows), moons_model.predict(rows))
    registry.store.put(manifest.artifact_key, b"evil")
    with pytest.raises(IntegrityError):
        load_model(registry, older, PicklePolicy.ALLOW_UNSAFE)


def test_a_loaded_model_predicts_like_the_original(
    registry: ModelRegistry, moons_bytes: bytes, moons_model, registrar: Registrar
) -> None:
    manifest = registrar.register("moons", moons_bytes).info.manifest
    rows = numpy.array([[0.5, 0.2], [1.5, -0.4], [-1.0, 1.0]])
    numpy.testing.assert_array_equal(
        load_model(registry, manifest).predict(rows), moons_model.predict(rows)
    )


@pytest.mark.parametrize("hash_field", ["serving_sha256", "sha256"])
def test_a_manifest_with_a_changed_hash_is_refused(
    registry: ModelRegistry, moons_bytes: bytes, hash_field: str, registrar: Registrar
) -> None:
    manifest = registrar.register("moons", moons_bytes).info.manifest
    edited = manifest.model_copy(update={hash_field: "0" * 64})

    with pytest.raises(IntegrityError):
        if hash_field == "serving_sha256":
            load_model(registry, edited)
        else:
            registry.read_artifact(edited)
