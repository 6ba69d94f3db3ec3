"""Edit, restore and delete: what a registry user needs to fix or undo, race-free."""

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sklearn.linear_model import LogisticRegression

from registry.config import PicklePolicy
from registry.errors import (
    InvalidArtifactError,
    InvalidRequestError,
    ModelBeingDeletedError,
    ModelNotFoundError,
    PickleRefusedError,
    VersionInUseError,
    VersionNeedsConversionError,
    VersionNotFoundError,
)
from registry.manifest import ModelManifest, ServingFormat, manifest_key
from registry.registering.deletion import ModelDeleter
from registry.registering.registration import Registrar
from registry.registry import ModelRegistry
from registry.serving.cache import ModelCache
from registry.serving.predictor import LoadedModel, Predictor
from tests.support.models import distinct_model_bytes
from tests.support.registries import register_as_before, registrar_for


@pytest.fixture
def two_versions(registrar: Registrar, moons_bytes: bytes) -> ModelRegistry:
    registrar.register("moons", moons_bytes, description="first", tags={"team": "a"})
    registrar.register("moons", distinct_model_bytes(1), metrics={"accuracy": 0.9})
    return registrar.registry


def test_an_edit_changes_metadata_and_nothing_that_was_registered(
    two_versions: ModelRegistry,
) -> None:
    registry = two_versions
    stored_before = registry.store.get(manifest_key("moons", 1))

    edited = registry.edit_metadata(
        "moons",
        1,
        description="the blog's model",
        tags={"team": None, "stage": "prod"},
        metrics={"auc": 0.97},
        edited_by="arn:aws:iam::123456789012:user/ana",
    )

    assert (edited.manifest.description, edited.manifest.tags, edited.manifest.metrics) == (
        "the blog's model",
        {"stage": "prod"},
        {"auc": 0.97},
    )
    assert edited.edited_by == "arn:aws:iam::123456789012:user/ana"
    assert registry.get_version("moons", 1) == edited
    assert registry.describe_model("moons").versions[0].manifest.description == "the blog's model"
    # the manifest, with its bytes' hash and runtime, is as it was written
    assert registry.store.get(manifest_key("moons", 1)) == stored_before
    assert ModelManifest.model_validate_json(stored_before).description == "first"


def test_an_edit_that_leaves_out_a_field_keeps_it(two_versions: ModelRegistry) -> None:
    edited = two_versions.edit_metadata("moons", 2, tags={"owner": "ana"})

    assert (edited.manifest.description, edited.manifest.metrics) == ("", {"accuracy": 0.9})
    assert edited.manifest.tags == {"owner": "ana"}


def test_an_edit_over_the_limits_is_a_422_and_changes_nothing(two_versions: ModelRegistry) -> None:
    with pytest.raises(InvalidRequestError, match="more than 50 tags"):
        two_versions.edit_metadata("moons", 1, tags={f"k{i}": "v" for i in range(50)})

    assert two_versions.get_version("moons", 1).manifest.tags == {"team": "a"}


def test_concurrent_edits_of_different_versions_all_land(two_versions: ModelRegistry) -> None:
    def edit(version: int) -> None:
        two_versions.edit_metadata("moons", version, tags={"worker": str(version)})

    threads = [threading.Thread(target=edit, args=(version,)) for version in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert two_versions.get_version("moons", 1).manifest.tags == {"team": "a", "worker": "1"}
    assert two_versions.get_version("moons", 2).manifest.tags == {"worker": "2"}


def test_a_restored_version_is_served_and_aliasable_again(two_versions: ModelRegistry) -> None:
    registry = two_versions
    registry.archive("moons", 2)
    assert registry.latest_active_version("moons") == 1

    restored = registry.restore("moons", 2)

    assert restored.status == "active"
    assert registry.latest_active_version("moons") == 2
    registry.set_alias("moons", "production", 2)


def test_identical_bytes_with_other_metadata_say_what_was_kept_and_how_to_edit(
    registrar: Registrar, moons_bytes: bytes
) -> None:
    first = registrar.register("moons", moons_bytes, description="v1")

    again = registrar.register("moons", moons_bytes, description="v1")
    changed = registrar.register("moons", moons_bytes, description="better words")

    assert first.note is None and again.note is None
    assert changed.created is False and changed.info.manifest.description == "v1"
    assert changed.note is not None
    assert "already version 1" in changed.note
    assert "PATCH /models/moons/versions/1" in changed.note
    assert "model-registry edit moons 1" in changed.note


def test_deleting_a_model_removes_every_object_and_never_reuses_its_numbers(
    two_versions: ModelRegistry, registrar: Registrar, moons_bytes: bytes
) -> None:
    registry = two_versions
    registry.archive("moons", 1)
    registry.edit_metadata("moons", 2, description="soon gone")

    deleted = ModelDeleter(registry).delete_model("moons")

    assert (deleted.deleted_through, deleted.versions_deleted) == (2, 2)
    assert list(registry.store.list_keys("models/moons/")) == ["models/moons/state.json"]
    assert list(registry.store.list_keys("uploads/moons/")) == []
    assert [summary.name for summary in registry.list_models()] == []
    with pytest.raises(ModelNotFoundError):
        registry.describe_model("moons")
    with pytest.raises(ModelNotFoundError):
        registry.get_version("moons", 2)
    # the same bytes register anew, past the deleted numbers, with nothing carried over
    again = registrar.register("moons", moons_bytes)
    assert (again.created, again.info.manifest.version) == (True, 3)
    assert registry.state("moons").archived == [] and again.info.manifest.description == ""


def test_a_model_with_aliases_is_deleted_only_when_forced(two_versions: ModelRegistry) -> None:
    registry = two_versions
    registry.set_alias("moons", "production", 2)
    deleter = ModelDeleter(registry)

    with pytest.raises(VersionInUseError, match=r"production -> 2.*force=true"):
        deleter.delete_model("moons")
    assert registry.latest_active_version("moons") == 2

    deleter.delete_model("moons", force=True)
    with pytest.raises(ModelNotFoundError):
        registry.resolve_version("moons", registry.state("moons"), None, "production")


def test_an_unknown_model_is_not_found_for_delete(registry: ModelRegistry) -> None:
    with pytest.raises(ModelNotFoundError):
        ModelDeleter(registry).delete_model("nothing")


def test_a_delete_cut_short_hides_the_versions_and_a_second_delete_finishes_it(
    two_versions: ModelRegistry, registrar: Registrar, moons_bytes: bytes
) -> None:
    registry = two_versions
    store = registry.store
    real_delete = store.delete
    calls: list[Any] = []

    def failing_after_manifests(keys: Any) -> None:
        calls.append(keys)
        if len(calls) == 2:
            raise OSError("the sweep was cut short")
        real_delete(keys)

    store.delete = failing_after_manifests  # type: ignore[method-assign]
    with pytest.raises(OSError):
        ModelDeleter(registry).delete_model("moons")
    store.delete = real_delete  # type: ignore[method-assign]

    with pytest.raises(ModelNotFoundError):
        registry.latest_active_version("moons")
    with pytest.raises(ModelBeingDeletedError, match="being deleted"):
        registrar.register("moons", moons_bytes)

    ModelDeleter(registry).delete_model("moons")
    assert list(store.list_keys("models/moons/")) == ["models/moons/state.json"]
    assert registrar.register("moons", moons_bytes).info.manifest.version == 3


def test_a_registration_that_began_before_the_delete_is_waited_for_and_deleted_too(
    two_versions: ModelRegistry, registrar: Registrar
) -> None:
    registry = two_versions
    claimed = threading.Event()
    go_on = threading.Event()
    real_state = registry.state
    outcome: dict[str, Any] = {}

    def state_after_the_delete_began(name: str) -> Any:
        # The registration has its claim; it read the state before the tombstone.
        current = real_state(name)
        if threading.current_thread().name == "registration" and not claimed.is_set():
            claimed.set()
            go_on.wait(10)
        return current

    registry.state = state_after_the_delete_began  # type: ignore[method-assign]

    def register() -> None:
        outcome["registration"] = registrar.register("moons", distinct_model_bytes(2))

    thread = threading.Thread(target=register, name="registration")
    thread.start()
    assert claimed.wait(60)
    deleter = ModelDeleter(registry)
    deleting = threading.Thread(
        target=lambda: outcome.update(deleted=deleter.delete_model("moons"))
    )
    deleting.start()
    deleting.join(0.5)
    assert deleting.is_alive(), "the delete must wait for the registration it saw claimed"
    go_on.set()
    thread.join(60)
    deleting.join(60)

    assert outcome["registration"].info.manifest.version == 3
    assert outcome["deleted"].deleted_through == 3
    assert list(registry.store.list_keys("models/moons/")) == ["models/moons/state.json"]


def test_versions_of_a_deleted_model_cannot_be_aliased_edited_or_restored(
    two_versions: ModelRegistry,
) -> None:
    registry = two_versions
    state = registry.state("moons")
    registry.update_state("moons", lambda _: state.model_copy(update={"deleted_through": 2}))

    for change in (
        lambda: registry.set_alias("moons", "production", 1),
        lambda: registry.edit_metadata("moons", 1, description="x"),
        lambda: registry.restore("moons", 1),
        lambda: registry.archive("moons", 2),
    ):
        with pytest.raises((ModelNotFoundError, VersionNotFoundError)):
            change()


def test_edits_are_dated_by_the_registrys_clock(registrar: Registrar, moons_bytes: bytes) -> None:
    registrar.register("moons", moons_bytes)
    moment = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    registry = ModelRegistry(registrar.registry.store, clock=lambda: moment)

    assert registry.edit_metadata("moons", 1, description="dated").edited_at == moment


def test_an_upload_is_deleted_once_registered_and_kept_when_the_registration_failed(
    registrar: Registrar, moons_bytes: bytes
) -> None:
    store = registrar.store
    good, bad = "uploads/moons/" + "a" * 32 + ".joblib", "uploads/moons/" + "b" * 32 + ".joblib"
    store.put(good, moons_bytes)
    store.put(bad, b"not a model")

    registrar.register_upload("moons", good)
    with pytest.raises(InvalidArtifactError):
        registrar.register_upload("moons", bad)

    # nothing the validator was handed stays either
    assert list(store.list_keys("uploads/moons/")) == [bad]


def test_a_version_with_a_pickled_copy_is_converted_once_and_then_served_without_unpickling(
    registry: ModelRegistry,
) -> None:
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 1, 0, 1])
    old = register_as_before(registry, "linear", model)
    assert old.serving_format is ServingFormat.PICKLE
    predictor = Predictor(registry, ModelCache[LoadedModel](10**9), alias_ttl_seconds=0)
    with pytest.raises(VersionNeedsConversionError, match="model-registry convert linear 1"):
        predictor.predict("linear", 1, [[1.5]])

    info, converted = registrar_for(registry).convert("linear", 1)

    assert converted is True
    assert info.manifest.serving_format is ServingFormat.SKOPS
    assert registry.get_manifest("linear", 1) == old  # written once: the state holds the copy
    assert registry.state("linear").serving[1].key == info.manifest.serving_key
    rows = [[1.5], [-2.0], [0.25]]
    assert predictor.predict("linear", 1, rows).predictions == model.predict(rows).tolist()
    # once is enough; and a registry that refuses pickles does not load it to convert it
    assert registrar_for(registry).convert("linear", 1)[1] is False
    denying = registrar_for(registry, pickle_policy=PicklePolicy.DENY)
    register_as_before(registry, "other", model)
    with pytest.raises(PickleRefusedError):
        denying.convert("other", 1)
