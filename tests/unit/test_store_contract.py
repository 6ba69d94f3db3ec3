"""The object-store contract, run against the directory store and S3 alike."""

import pytest

from registry.errors import InvalidNameError, ObjectNotFoundError
from registry.store import LocalStore, S3Store, open_store
from registry.store.base import ObjectStore


def test_get_of_a_missing_key_raises_object_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError):
        store.get("models/nothing/here.json")


def test_put_then_get_returns_the_same_bytes(store: ObjectStore) -> None:
    store.put("models/a/artifacts/x.joblib", b"\x00\x01payload")
    assert store.get("models/a/artifacts/x.joblib") == b"\x00\x01payload"


def test_put_replaces_an_existing_object(store: ObjectStore) -> None:
    store.put("k/one", b"first")
    store.put("k/one", b"second")
    assert store.get("k/one") == b"second"


def test_create_writes_only_when_the_key_is_free(store: ObjectStore) -> None:
    assert store.create("models/a/versions/1.json", b"winner") is True
    assert store.create("models/a/versions/1.json", b"loser") is False
    assert store.get("models/a/versions/1.json") == b"winner"


def test_create_of_the_same_bytes_again_succeeds_as_a_retry_would(store: ObjectStore) -> None:
    assert store.create("models/a/versions/1.json", b"mine") is True
    assert store.create("models/a/versions/1.json", b"mine") is True
    assert store.get("models/a/versions/1.json") == b"mine"


def test_size_and_get_range_read_part_of_an_object(store: ObjectStore) -> None:
    store.put("batch/in.csv", b"a,b\n1,2\n3,4\n")
    assert store.size("batch/in.csv") == 12
    assert store.get_range("batch/in.csv", 4, 8) == b"1,2\n"
    assert store.get_range("batch/in.csv", 8, 100) == b"3,4\n"
    assert store.get_range("batch/in.csv", 12, 20) == b""
    assert store.get_range("batch/in.csv", 5, 5) == b""
    with pytest.raises(ObjectNotFoundError):
        store.size("batch/missing.csv")
    with pytest.raises(ObjectNotFoundError):
        store.get_range("batch/missing.csv", 0, 10)


def test_list_keys_returns_matching_keys_in_ascending_order(store: ObjectStore) -> None:
    for key in ("models/b/versions/2.json", "models/b/versions/1.json", "models/bb/x", "other/y"):
        store.put(key, b".")
    assert list(store.list_keys("models/b/")) == [
        "models/b/versions/1.json",
        "models/b/versions/2.json",
    ]
    assert list(store.list_keys("models/nobody/")) == []


def test_delete_removes_the_object_and_a_second_delete_is_no_error(store: ObjectStore) -> None:
    store.put("models/a/versions/1.json", b"gone soon")
    store.put("models/a/versions/2.json", b"stays")

    store.delete(["models/a/versions/1.json"])
    store.delete(["models/a/versions/1.json", "models/a/never/there.json"])

    with pytest.raises(ObjectNotFoundError):
        store.get("models/a/versions/1.json")
    assert list(store.list_keys("models/a/")) == ["models/a/versions/2.json"]
    assert store.create("models/a/versions/1.json", b"anew") is True


def test_local_store_refuses_keys_that_leave_its_root(tmp_path) -> None:
    store = LocalStore(tmp_path / "root")
    with pytest.raises(InvalidNameError):
        store.put("../outside", b"x")
    assert not (tmp_path / "outside").exists()


def test_open_store_chooses_the_backend_from_the_uri(tmp_path, s3_client) -> None:
    s3_store = open_store("s3://bucket/some/prefix", s3_client=s3_client)
    assert isinstance(s3_store, S3Store)
    assert (s3_store.bucket, s3_store.prefix) == ("bucket", "some/prefix/")
    assert isinstance(open_store(str(tmp_path)), LocalStore)


def test_s3_store_keeps_objects_under_its_prefix(s3_client) -> None:
    store = S3Store("test-registry", "team/registry", s3_client=s3_client)
    store.put("models/a/x", b"data")
    listed = s3_client.list_objects_v2(Bucket="test-registry")["Contents"]
    assert [item["Key"] for item in listed] == ["team/registry/models/a/x"]


def test_s3_create_retried_by_botocore_after_its_write_landed_still_succeeds(s3_client) -> None:
    # The first PutObject succeeds but botocore is told to retry it, as it does when
    # the answer is lost to a timeout: the retry meets 412 on the object it wrote.
    retried = []

    def retry_first_put_once(attempts: int, **_: object) -> float | None:
        if not retried:
            retried.append(attempts)
            return 0.0
        return None

    s3_client.meta.events.register("needs-retry.s3.PutObject", retry_first_put_once)
    store = S3Store("test-registry", "", s3_client=s3_client)

    assert store.create("models/a/versions/1.json", b"mine") is True
    assert retried == [1]
    assert store.create("models/a/versions/1.json", b"theirs") is False


def test_an_unreachable_s3_is_store_unavailable_not_a_crash() -> None:
    import boto3

    from registry.errors import StoreUnavailableError
    from registry.store.s3 import DEFAULT_CLIENT_CONFIG

    # Nothing listens on port 9 of the loopback: every connection is refused at once.
    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        config=DEFAULT_CLIENT_CONFIG,
    )
    store = S3Store("test-registry", "registry", s3_client=client)
    for call in (
        lambda: store.get("k"),
        lambda: store.put("k", b"x"),
        lambda: list(store.list_keys("models/")),
        lambda: store.create("k", b"x"),
    ):
        with pytest.raises(StoreUnavailableError):
            call()
