"""Several processes register one model name at once: every version is distinct and consecutive."""

import multiprocessing
from pathlib import Path
from typing import Any

import boto3
import pytest

from registry.manifest import sha256_hex
from registry.registry import ModelRegistry
from registry.store import open_store
from tests.integration.registration_worker import move_aliases, register_many, register_same
from tests.support.models import distinct_model_bytes
from tests.support.registries import BUCKET, REGION, registrar_for

PROCESSES = 4
REGISTRATIONS_PER_PROCESS = 16  # 4 x 16 = 64 versions


def run_processes(target: Any, args_for: list[tuple[Any, ...]], expected: int) -> list[Any]:
    """Start one process per argument tuple, release them at once, collect `expected` results."""
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    results = context.Queue()
    workers = [context.Process(target=target, args=(*args, start, results)) for args in args_for]
    for worker in workers:
        worker.start()
    start.set()
    outcomes = [results.get(timeout=120) for _ in range(expected)]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    return outcomes


def register_from_processes(registry_uri: str, endpoint: str | None) -> list[tuple[int, str]]:
    seeds = [list(range(p * 100, p * 100 + REGISTRATIONS_PER_PROCESS)) for p in range(PROCESSES)]
    return run_processes(
        register_many,
        [(registry_uri, endpoint, "moons", seeds[p]) for p in range(PROCESSES)],
        PROCESSES * REGISTRATIONS_PER_PROCESS,
    )


def assert_distinct_consecutive_and_consistent(
    registry: ModelRegistry, outcomes: list[tuple[int, str]]
) -> None:
    total = PROCESSES * REGISTRATIONS_PER_PROCESS
    assert sorted(version for version, _ in outcomes) == list(range(1, total + 1))
    assert registry.list_versions("moons") == list(range(1, total + 1))
    for version, sha256 in outcomes:
        manifest = registry.get_manifest("moons", version)
        assert manifest.sha256 == sha256
        assert sha256_hex(registry.read_artifact(manifest)) == sha256
    assert len({sha256 for _, sha256 in outcomes}) == total


def test_processes_registering_one_name_on_s3_get_distinct_consecutive_versions(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"s3://{BUCKET}/registry"
    outcomes = register_from_processes(uri, moto_server)

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    assert_distinct_consecutive_and_consistent(ModelRegistry(open_store(uri)), outcomes)


def test_processes_registering_one_name_locally_get_distinct_consecutive_versions(
    tmp_path: Path,
) -> None:
    uri = str(tmp_path / "registry")
    outcomes = register_from_processes(uri, None)
    assert_distinct_consecutive_and_consistent(ModelRegistry(open_store(uri)), outcomes)


def test_the_s3_store_honours_the_standard_endpoint_variable(
    moto_server: str, monkeypatch: pytest.MonkeyPatch, moons_bytes: bytes
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    registrar_for(ModelRegistry(open_store(f"s3://{BUCKET}/team"))).register("moons", moons_bytes)

    direct: Any = boto3.client("s3", region_name=REGION, endpoint_url=moto_server)
    keys = [item["Key"] for item in direct.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert "team/models/moons/versions/0000000001.json" in keys


@pytest.fixture(params=["s3", "local"])
def shared_registry(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """A registry URI that several processes open, and the S3 endpoint if there is one."""
    if request.param == "local":
        return str(tmp_path / "registry"), None
    return f"s3://{BUCKET}/registry", request.getfixturevalue("moto_server")


def open_shared(shared: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    uri, endpoint = shared
    if endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    return ModelRegistry(open_store(uri))


def test_processes_registering_identical_bytes_get_one_version(
    shared_registry: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch, moons_bytes: bytes
) -> None:
    uri, endpoint = shared_registry
    outcomes = run_processes(
        register_same, [(uri, endpoint, "moons", moons_bytes)] * PROCESSES, PROCESSES
    )

    assert {version for version, _ in outcomes} == {1}
    assert sorted(created for _, created in outcomes) == [False] * (PROCESSES - 1) + [True]
    assert open_shared(shared_registry, monkeypatch).list_versions("moons") == [1]


def test_processes_moving_aliases_at_once_lose_no_update(
    shared_registry: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = open_shared(shared_registry, monkeypatch)
    for seed in range(3):
        registrar_for(registry).register("moons", distinct_model_bytes(seed))
    uri, endpoint = shared_registry

    finished = run_processes(
        move_aliases, [(uri, endpoint, "moons", index) for index in range(PROCESSES)], PROCESSES
    )

    aliases = registry.state("moons").aliases
    assert sorted(finished) == list(range(PROCESSES))
    # Every mover's last move of its own alias survived: none was overwritten by a stale copy.
    assert {f"mover-{index}": 3 for index in range(PROCESSES)}.items() <= aliases.items()
    assert aliases["shared"] in {index % 3 + 1 for index in range(PROCESSES)}
