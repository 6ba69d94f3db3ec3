"""The management routes through the real handlers, over moto's in-process S3."""

import base64
from typing import Any

import numpy
import pytest

from tests.support.handlers import Call
from tests.support.models import distinct_model_bytes

CALLER = "arn:aws:iam::123456789012:user/ml-engineer"


def register(call: Call, name: str, artifact: bytes, **extra: Any) -> tuple[int, dict[str, Any]]:
    body = {"name": name, "artifact": base64.b64encode(artifact).decode(), **extra}
    return call("POST", "/models", body)


@pytest.fixture
def three_versions(call: Call) -> None:
    for seed in range(3):
        status, _ = register(call, "moons", distinct_model_bytes(seed), description=f"v{seed + 1}")
        assert status == 201


def test_registration_records_metadata_metrics_and_the_iam_caller(call: Call) -> None:
    status, manifest = register(
        call, "moons", distinct_model_bytes(1), tags={"team": "ml"}, metrics={"accuracy": 0.9}
    )

    assert status == 201
    assert manifest["created"] is True
    assert manifest["registered_by"] == CALLER
    assert (manifest["tags"], manifest["metrics"]) == ({"team": "ml"}, {"accuracy": 0.9})
    assert (manifest["status"], manifest["aliases"]) == ("active", [])
    assert manifest["has_predict_proba"] is True


def test_registering_identical_bytes_again_answers_200_with_the_existing_version(
    call: Call,
) -> None:
    artifact = distinct_model_bytes(4)
    first_status, first = register(call, "moons", artifact)
    again_status, again = register(call, "moons", artifact)

    assert (first_status, again_status) == (201, 200)
    assert (again["version"], again["created"]) == (first["version"], False)


def test_listing_shows_every_model_with_latest_version_count_and_aliases(
    call: Call, three_versions: None
) -> None:
    register(call, "iris", distinct_model_bytes(10))
    call("PUT", "/models/moons/aliases/production", {"version": 2})

    status, listing = call("GET", "/models")

    assert status == 200
    assert listing["models"] == [
        {"name": "iris", "latest_version": 1, "version_count": 1, "aliases": {}},
        {"name": "moons", "latest_version": 3, "version_count": 3, "aliases": {"production": 2}},
    ]


def test_a_models_page_lists_versions_with_status_and_a_cursor(
    call: Call, three_versions: None
) -> None:
    call("DELETE", "/models/moons/versions/1")

    status, page = call("GET", "/models/moons", query={"limit": "2"})
    _, rest = call("GET", "/models/moons", query={"after": str(page["next_after"])})

    assert status == 200
    assert [(v["version"], v["status"]) for v in page["versions"]] == [
        (1, "archived"),
        (2, "active"),
    ]
    assert page["versions"][1]["description"] == "v2"
    assert [v["version"] for v in rest["versions"]] == [3]
    assert rest["next_after"] is None


def test_a_version_answers_its_full_manifest(call: Call, three_versions: None) -> None:
    status, manifest = call("GET", "/models/moons/versions/2")
    assert status == 200
    assert (manifest["version"], manifest["status"], manifest["description"]) == (2, "active", "v2")
    assert manifest["runtime"]["scikit_learn"]


@pytest.fixture
def no_alias_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Predict sees every alias move at once (before the service reads its settings)."""
    monkeypatch.setenv("ALIAS_TTL_SECONDS", "0")


def test_classify_follows_aliases_and_the_default_alias(
    no_alias_cache: None, call: Call, three_versions: None
) -> None:
    rows = {"instances": [[0.1, 0.2]]}
    assert call("PUT", "/models/moons/aliases/production", {"version": 1}) == (
        200,
        {
            "name": "moons",
            "alias": "production",
            "version": 1,
            "weights": None,
            "salt": None,
            "shadow": None,
        },
    )
    status, answer = call("POST", "/classify", rows, {"model": "moons", "alias": "production"})
    assert (status, answer["version"]) == (200, 1)

    assert call("POST", "/classify", rows, {"model": "moons"})[1]["version"] == 3
    call("PUT", "/models/moons/aliases/default", {"version": 2})
    assert call("POST", "/classify", rows, {"model": "moons"})[1]["version"] == 2

    assert call("DELETE", "/models/moons/aliases/production")[0] == 200
    status, answer = call("POST", "/classify", rows, {"model": "moons", "alias": "production"})
    assert (status, answer["code"]) == (404, "alias_not_found")


def test_an_archived_version_is_gone_for_classify_and_still_listed(
    call: Call, three_versions: None
) -> None:
    status, archived = call("DELETE", "/models/moons/versions/3")
    assert (status, archived["status"]) == (200, "archived")

    status, answer = call("POST", "/classify", {"data1": 1, "data2": 2}, {"version": "3"})
    assert (status, answer["code"]) == (410, "version_archived")
    assert call("GET", "/models/moons/versions/3")[1]["status"] == "archived"


def test_archiving_an_aliased_version_is_a_409_naming_the_alias(
    call: Call, three_versions: None
) -> None:
    call("PUT", "/models/moons/aliases/production", {"version": 2})
    status, answer = call("DELETE", "/models/moons/versions/2")
    assert (status, answer["code"]) == (409, "version_in_use")
    assert "production" in answer["message"]


def test_probabilities_come_with_the_classes(
    call: Call, moons_bytes: bytes, moons_model: Any
) -> None:
    register(call, "moons", moons_bytes)
    rows = [[0.5, 0.2], [1.5, -0.4]]

    status, answer = call("POST", "/classify", {"instances": rows, "probabilities": True})

    assert status == 200
    assert answer["probabilities"] == moons_model.predict_proba(numpy.array(rows)).tolist()
    assert answer["classes"] == [0, 1]
    status, single = call("POST", "/classify", {"data1": 0.5, "data2": 0.2})
    assert set(single) == {"prediction", "model", "version"}


def test_an_upload_url_is_handed_out_for_the_model(call: Call) -> None:
    status, upload = call("POST", "/models/moons/uploads")
    assert status == 201
    assert upload["upload_key"].startswith("uploads/moons/")
    assert upload["expires_in"] == 900
    assert "X-Amz-Signature=" in upload["upload_url"]


@pytest.mark.parametrize(
    ("method", "path", "body", "query", "status", "code"),
    [
        ("GET", "/models/nobody", None, None, 404, "model_not_found"),
        ("GET", "/models/Bad", None, None, 422, "invalid_request"),
        ("GET", "/models/moons/versions/9", None, None, 404, "version_not_found"),
        ("GET", "/models/moons/versions/0", None, None, 422, "invalid_request"),
        ("GET", "/models/moons/versions/abc", None, None, 422, "invalid_request"),
        ("GET", "/models/moons", None, {"limit": "0"}, 422, "invalid_request"),
        ("DELETE", "/models/moons/versions/9", None, None, 404, "version_not_found"),
        ("PUT", "/models/moons/aliases/prod", {"version": 9}, None, 404, "version_not_found"),
        ("PUT", "/models/moons/aliases/prod", {"version": 0}, None, 422, "invalid_request"),
        ("PUT", "/models/moons/aliases/prod", {"version": "x"}, None, 422, "invalid_request"),
        ("PUT", "/models/moons/aliases/prod", {}, None, 422, "invalid_request"),
        ("PUT", "/models/moons/aliases/Prod", {"version": 1}, None, 422, "invalid_request"),
        ("DELETE", "/models/moons/aliases/prod", None, None, 404, "alias_not_found"),
        ("POST", "/models/Bad/uploads", None, None, 422, "invalid_request"),
        (
            "POST",
            "/models",
            {"name": "moons", "upload_key": "uploads/moons/" + "a" * 32 + ".joblib"},
            None,
            404,
            "upload_not_found",
        ),
        (
            "POST",
            "/models",
            {"name": "moons", "upload_key": "models/moons/state.json"},
            None,
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/models",
            {"name": "moons", "artifact": "eA==", "upload_key": "x"},
            None,
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/models",
            {"name": "m", "artifact": "eA==", "metrics": {"a": "x"}},
            None,
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/classify",
            {"data1": 1, "data2": 2},
            {"version": "1", "alias": "prod"},
            422,
            "invalid_request",
        ),
        ("POST", "/classify", {"data1": 1, "data2": 2}, {"alias": "nope"}, 404, "alias_not_found"),
        (
            "POST",
            "/classify",
            {"data1": 1, "data2": 2, "probabilities": "yes"},
            None,
            422,
            "invalid_request",
        ),
        ("POST", "/classify", {"instances": [{"a": 1.0}]}, None, 422, "invalid_input"),
    ],
)
def test_bad_management_requests_get_a_4xx_with_a_code(
    call: Call,
    moons_bytes: bytes,
    method: str,
    path: str,
    body: Any,
    query: dict[str, str] | None,
    status: int,
    code: str,
) -> None:
    register(call, "moons", moons_bytes)
    answer_status, answer = call(method, path, body, query)
    assert (answer_status, answer["code"]) == (status, code)


def test_a_version_is_edited_by_patch_and_the_edit_is_shown(
    call: Call, three_versions: None
) -> None:
    status, edited = call(
        "PATCH",
        "/models/moons/versions/2",
        {"description": "retrained", "tags": {"stage": "prod"}, "metrics": {"auc": 0.9}},
    )
    _, shown = call("GET", "/models/moons/versions/2")
    _, page = call("GET", "/models/moons")

    assert status == 200
    assert (edited["description"], edited["tags"], edited["metrics"]) == (
        "retrained",
        {"stage": "prod"},
        {"auc": 0.9},
    )
    assert (edited["edited_by"], edited["edited_at"] is not None) == (CALLER, True)
    assert shown == edited
    assert page["versions"][1]["description"] == "retrained"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "send description, tags or metrics"),
        ({"sha256": "0" * 64}, "sha256"),
        ({"metrics": {"auc": "high"}}, "metrics"),
    ],
)
def test_an_edit_of_what_cannot_change_or_of_nothing_is_a_422(
    call: Call, three_versions: None, body: dict[str, Any], message: str
) -> None:
    status, answer = call("PATCH", "/models/moons/versions/1", body)

    assert (status, answer["code"]) == (422, "invalid_request")
    assert message in answer["message"]


def test_identical_bytes_with_new_metadata_answer_with_a_note(call: Call) -> None:
    artifact = distinct_model_bytes(5)
    register(call, "moons", artifact, description="first words")

    status, again = register(call, "moons", artifact, description="second words")

    assert (status, again["created"], again["description"]) == (200, False, "first words")
    assert "PATCH /models/moons/versions/1" in again["note"]


def test_an_archived_version_is_restored_and_served_again(call: Call, three_versions: None) -> None:
    call("DELETE", "/models/moons/versions/3")

    status, restored = call("POST", "/models/moons/versions/3/restore")
    _, listing = call("GET", "/models")

    assert (status, restored["status"]) == (200, "active")
    assert listing["models"][0]["latest_version"] == 3


def test_a_model_is_deleted_with_force_when_aliased_and_its_numbers_are_not_reused(
    call: Call, three_versions: None
) -> None:
    call("PUT", "/models/moons/aliases/production", {"version": 2})

    refused_status, refused = call("DELETE", "/models/moons")
    status, deleted = call("DELETE", "/models/moons", query={"force": "true"})
    gone_status, gone = call("GET", "/models/moons")
    again_status, again = register(call, "moons", distinct_model_bytes(0))

    assert (refused_status, refused["code"]) == (409, "version_in_use")
    assert "force=true" in refused["message"]
    assert (status, deleted) == (
        200,
        {"name": "moons", "deleted_through": 3, "versions_deleted": 3, "objects_deleted": 12},
    )
    assert (gone_status, gone["code"]) == (404, "model_not_found")
    assert (again_status, again["version"]) == (201, 4)


def test_the_runtime_route_names_the_versions_artifacts_are_loaded_with(call: Call) -> None:
    import sklearn

    status, runtime = call("GET", "/runtime")

    assert status == 200
    assert runtime["scikit_learn"] == sklearn.__version__
    assert runtime["python"].count(".") == 2 and runtime["numpy"] == numpy.__version__


def test_a_weighted_alias_splits_classify_by_routing_key_and_names_each_version(
    no_alias_cache: None, call: Call, three_versions: None
) -> None:
    from registry.manifest import AliasSplit
    from registry.traffic import version_for

    status, alias = call("PUT", "/models/moons/aliases/production", {"weights": {"1": 80, "2": 20}})
    assert status == 200 and alias["weights"] == {"1": 80, "2": 20} and alias["version"] == 1
    split = AliasSplit(weights={1: 80, 2: 20}, salt=alias["salt"])
    rows = {"instances": [[0.1, 0.2]]}
    query = {"model": "moons", "alias": "production"}
    served = set()
    for key in [f"entity-{index}" for index in range(40)]:
        for _ in range(2):  # the same key stays on its version
            status, answer = call("POST", "/classify", rows, query, {"X-Routing-Key": key})
            assert (status, answer["version"]) == (200, version_for(split, "moons", key))
        served.add(answer["version"])
    assert served == {1, 2}
    # without a routing key, the request id picks: every answer still names its version
    versions = {call("POST", "/classify", rows, query)[1]["version"] for _ in range(40)}
    assert versions == {1, 2}
    # one version ends the split
    assert call("PUT", "/models/moons/aliases/production", {"version": 3})[1]["weights"] is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"weights": {"1": 90, "2": 0}}, "weights"),
        ({"weights": {"1": 100}}, "between 2 and 4 versions"),
        ({"version": 1, "weights": {"1": 50, "2": 50}}, "exactly one of version or weights"),
        ({"weights": {"1": 50, "9": 50}}, "version 9"),
        ({"version": 1, "salt": "abc"}, "a salt goes with weights"),
    ],
)
def test_bad_alias_splits_are_4xx_that_say_what_to_send(
    call: Call, three_versions: None, body: dict[str, Any], expected: str
) -> None:
    status, answer = call("PUT", "/models/moons/aliases/production", body)
    assert 400 <= status < 500 and expected in answer["message"], answer
    assert call("GET", "/models/moons")[1]["aliases"] == {}
