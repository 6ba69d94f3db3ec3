"""Listing, aliases, archive, retry-safe registration and uploads, against both stores."""

import pickle
import threading
from pathlib import Path

import pytest

from registry.errors import (
    AliasNotFoundError,
    ArtifactTooLargeError,
    InvalidNameError,
    InvalidRequestError,
    ModelNotFoundError,
    UploadNotFoundError,
    UploadsUnavailableError,
    VersionArchivedError,
    VersionInUseError,
    VersionNotFoundError,
)
from registry.manifest import VersionStatus, manifest_key
from registry.registering.registration import Registrar
from registry.registry import ModelRegistry
from registry.store import LocalStore
from registry.store.base import ObjectStore
from tests.support.attack import CreatesFileWhenUnpickled
from tests.support.models import distinct_model_bytes
from tests.support.registries import registrar_for
from tests.support.resolving import resolved


def register_versions(registry: ModelRegistry, name: str, count: int, seed: int = 0) -> None:
    registrar = registrar_for(registry)
    for offset in range(count):
        registrar.register(name, distinct_model_bytes(seed + offset))


def test_list_models_gives_latest_active_version_count_and_aliases(
    registry: ModelRegistry,
) -> None:
    register_versions(registry, "moons", 3)
    register_versions(registry, "iris", 1, seed=10)
    registry.set_alias("moons", "production", 2)
    registry.archive("moons", 3)

    summaries = {summary.name: summary for summary in registry.list_models()}

    assert list(summaries) == ["iris", "moons"]
    assert (summaries["moons"].latest_version, summaries["moons"].version_count) == (2, 3)
    assert summaries["moons"].aliases == {"production": 2}
    assert (summaries["iris"].latest_version, summaries["iris"].aliases) == (1, {})


def test_list_models_reads_no_manifest(registry: ModelRegistry) -> None:
    register_versions(registry, "moons", 2)
    read_keys: list[str] = []
    real_get = registry.store.get
    registry.store.get = lambda key: read_keys.append(key) or real_get(key)  # type: ignore[method-assign]

    registry.list_models()

    assert read_keys == ["models/moons/state.json"]


def test_describe_model_pages_through_versions_with_their_status(
    registry: ModelRegistry,
) -> None:
    register_versions(registry, "moons", 5)
    registry.archive("moons", 2)
    registry.set_alias("moons", "production", 4)

    first = registry.describe_model("moons", limit=2)
    second = registry.describe_model("moons", limit=2, after=first.next_after or 0)
    last = registry.describe_model("moons", limit=2, after=second.next_after or 0)

    assert [info.manifest.version for info in first.versions] == [1, 2]
    assert [info.status for info in first.versions] == [
        VersionStatus.ACTIVE,
        VersionStatus.ARCHIVED,
    ]
    assert [info.manifest.version for info in second.versions] == [3, 4]
    assert second.versions[1].aliases == ["production"]
    assert [info.manifest.version for info in last.versions] == [5]
    assert last.next_after is None
    assert (first.version_count, first.latest_version, first.aliases) == (5, 5, {"production": 4})


def test_aliases_are_set_moved_and_removed(registry: ModelRegistry) -> None:
    register_versions(registry, "moons", 3)

    registry.set_alias("moons", "production", 1)
    assert resolved(registry, "moons", alias="production") == 1
    registry.set_alias("moons", "production", 3)
    assert resolved(registry, "moons", alias="production") == 3

    assert registry.delete_alias("moons", "production") == 3
    with pytest.raises(AliasNotFoundError):
        resolved(registry, "moons", alias="production")
    with pytest.raises(AliasNotFoundError):
        registry.delete_alias("moons", "production")


@pytest.mark.parametrize(
    ("alias", "version", "error"),
    [
        ("Prod", 1, InvalidNameError),
        ("../x", 1, InvalidNameError),
        ("production", 9, VersionNotFoundError),
    ],
)
def test_bad_alias_updates_are_refused(
    registry: ModelRegistry, alias: str, version: int, error: type[Exception]
) -> None:
    register_versions(registry, "moons", 1)
    with pytest.raises(error):
        registry.set_alias("moons", alias, version)
    assert registry.state("moons").aliases == {}


def test_an_alias_of_an_unknown_model_is_not_found(registry: ModelRegistry) -> None:
    with pytest.raises(ModelNotFoundError):
        registry.set_alias("nobody", "production", 1)
    with pytest.raises(ModelNotFoundError):
        registry.delete_alias("nobody", "production")


def test_without_version_or_alias_the_default_alias_wins_over_latest(
    registry: ModelRegistry,
) -> None:
    register_versions(registry, "moons", 3)
    assert resolved(registry, "moons") == 3
    registry.set_alias("moons", "default", 1)
    assert resolved(registry, "moons") == 1


def test_a_version_and_an_alias_together_are_refused(registry: ModelRegistry) -> None:
    register_versions(registry, "moons", 1)
    registry.set_alias("moons", "production", 1)
    with pytest.raises(InvalidRequestError):
        resolved(registry, "moons", version=1, alias="production")


def test_an_archived_version_stays_listed_is_not_served_and_its_number_is_not_reused(
    registry: ModelRegistry,
    registrar: Registrar,
) -> None:
    register_versions(registry, "moons", 2)

    archived = registry.archive("moons", 2)

    assert archived.status is VersionStatus.ARCHIVED
    assert registry.get_version("moons", 2).status is VersionStatus.ARCHIVED
    with pytest.raises(VersionArchivedError):
        resolved(registry, "moons", version=2)
    assert resolved(registry, "moons") == 1
    assert registrar.register("moons", distinct_model_bytes(99)).info.manifest.version == 3
    assert registry.archive("moons", 2).status is VersionStatus.ARCHIVED  # idempotent


def test_archiving_the_target_of_an_alias_is_a_conflict_that_names_it(
    registry: ModelRegistry,
) -> None:
    register_versions(registry, "moons", 2)
    registry.set_alias("moons", "production", 2)

    with pytest.raises(VersionInUseError, match="'production'"):
        registry.archive("moons", 2)
    assert registry.get_version("moons", 2).status is VersionStatus.ACTIVE


def test_an_alias_cannot_point_at_an_archived_version(registry: ModelRegistry) -> None:
    register_versions(registry, "moons", 2)
    registry.archive("moons", 1)
    with pytest.raises(VersionArchivedError):
        registry.set_alias("moons", "production", 1)


def test_archiving_every_version_leaves_nothing_to_serve(registry: ModelRegistry) -> None:
    register_versions(registry, "moons", 1)
    registry.archive("moons", 1)
    with pytest.raises(VersionArchivedError):
        resolved(registry, "moons")
    with pytest.raises(VersionNotFoundError):
        registry.archive("moons", 2)


def test_identical_bytes_return_the_existing_version_not_a_new_one(
    registry: ModelRegistry, moons_bytes: bytes, registrar: Registrar
) -> None:
    first = registrar.register("moons", moons_bytes)
    again = registrar.register("moons", moons_bytes, description="a retry")

    assert (first.created, again.created) == (True, False)
    assert again.info.manifest == first.info.manifest
    assert registry.list_versions("moons") == [1]
    assert registrar.register("other", moons_bytes).created is True


def test_identical_bytes_of_an_archived_version_make_a_new_version(
    registry: ModelRegistry, moons_bytes: bytes, registrar: Registrar
) -> None:
    registrar.register("moons", moons_bytes)
    registry.archive("moons", 1)

    again = registrar.register("moons", moons_bytes)

    assert (again.created, again.info.manifest.version) == (True, 2)
    assert registrar.register("moons", moons_bytes).info.manifest.version == 2


# The S3 versions of the two races below run across processes against moto's
# server in tests/integration/test_concurrent_registration.py: in-process moto
# does not make conditional writes atomic.
def test_racing_identical_registrations_create_one_version(
    tmp_path: Path, moons_bytes: bytes
) -> None:
    registry = ModelRegistry(LocalStore(tmp_path))
    registrar = registrar_for(registry)
    start = threading.Barrier(6)
    results = []

    def register() -> None:
        start.wait()
        results.append(registrar.register("moons", moons_bytes))

    threads = [threading.Thread(target=register) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(result.created for result in results) == [False] * 5 + [True]
    assert {result.info.manifest.version for result in results} == {1}
    assert registry.list_versions("moons") == [1]


def test_concurrent_alias_updates_lose_nothing(tmp_path: Path) -> None:
    registry = ModelRegistry(LocalStore(tmp_path))
    register_versions(registry, "moons", 4)
    start = threading.Barrier(8)

    def move(index: int) -> None:
        start.wait()
        registry.set_alias("moons", f"alias-{index}", index % 4 + 1)
        registry.set_alias("moons", "shared", index % 4 + 1)

    threads = [threading.Thread(target=move, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    aliases = registry.state("moons").aliases
    assert {f"alias-{index}": index % 4 + 1 for index in range(8)}.items() <= aliases.items()
    assert aliases["shared"] in {1, 2, 3, 4}


def test_metadata_and_the_caller_are_recorded(
    registry: ModelRegistry, registrar: Registrar
) -> None:
    registration = registrar.register(
        "moons",
        distinct_model_bytes(1),
        description="d",
        tags={"team": "ml"},
        metrics={"accuracy": 0.93, "f1": 0.9},
        registered_by="arn:aws:iam::123456789012:user/ml",
    )
    manifest = registry.get_manifest("moons", registration.info.manifest.version)
    assert manifest.metrics == {"accuracy": 0.93, "f1": 0.9}
    assert manifest.registered_by == "arn:aws:iam::123456789012:user/ml"
    assert manifest.tags == {"team": "ml"}


def test_an_upload_is_registered_with_the_same_validation(
    registry: ModelRegistry, moons_bytes: bytes, registrar: Registrar
) -> None:
    key = "uploads/moons/" + "a" * 32 + ".joblib"
    registry.store.put(key, moons_bytes)

    registration = registrar.register_upload("moons", key, description="uploaded")

    assert registration.created
    assert registry.read_artifact(registration.info.manifest) == moons_bytes
    assert registration.info.manifest.description == "uploaded"


@pytest.mark.parametrize(
    "key",
    [
        "uploads/other/" + "a" * 32 + ".joblib",
        "uploads/moons/" + "b" * 32 + ".joblib",
        "models/moons/versions/0000000001.json",
        "uploads/moons/../../models/x.joblib",
    ],
    ids=["another-models-upload", "never-uploaded", "not-an-upload", "traversal"],
)
def test_only_this_models_existing_uploads_can_be_registered(
    registry: ModelRegistry, moons_bytes: bytes, key: str, registrar: Registrar
) -> None:
    registry.store.put("uploads/other/" + "a" * 32 + ".joblib", moons_bytes)
    with pytest.raises(UploadNotFoundError):
        registrar.register_upload("moons", key)


def test_an_artifact_over_the_limit_is_refused_before_it_is_unpickled(
    store: ObjectStore, tmp_path: Path
) -> None:
    registrar = registrar_for(ModelRegistry(store), max_artifact_bytes=64)
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(CreatesFileWhenUnpickled(marker)) + b"\x00" * 64
    key = "uploads/moons/" + "c" * 32 + ".joblib"
    store.put(key, payload)

    with pytest.raises(ArtifactTooLargeError):
        registrar.register_upload("moons", key)
    with pytest.raises(ArtifactTooLargeError):
        registrar.register("moons", payload)
    assert not marker.exists()


def test_upload_urls_need_the_local_api_for_a_directory_store(tmp_path: Path) -> None:
    with pytest.raises(UploadsUnavailableError):
        registrar_for(ModelRegistry(LocalStore(tmp_path))).create_upload("moons")
    served = registrar_for(
        ModelRegistry(LocalStore(tmp_path, upload_url="http://127.0.0.1:3000/_uploads"))
    )
    upload = served.create_upload("moons", expires_in=60)
    assert upload.upload_url == f"http://127.0.0.1:3000/_uploads/{upload.upload_key}"
    assert upload.upload_key.startswith("uploads/moons/")
    assert upload.expires_in == 60


def test_listing_stays_correct_past_one_s3_page_of_versions(
    registry: ModelRegistry, moons_bytes: bytes, registrar: Registrar
) -> None:
    manifest = registrar.register("moons", moons_bytes).info.manifest
    # 1,499 more versions: S3 lists 1,000 keys a page, so this needs the second page.
    for version in range(2, 1501):
        copy = manifest.model_copy(update={"version": version})
        registry.store.create(manifest_key("moons", version), copy.model_dump_json().encode())

    (summary,) = registry.list_models()
    last_page = registry.describe_model("moons", limit=1000, after=1000)

    assert (summary.latest_version, summary.version_count) == (1500, 1500)
    assert [info.manifest.version for info in last_page.versions] == list(range(1001, 1501))
    assert registrar.register("moons", distinct_model_bytes(1)).info.manifest.version == 1501
