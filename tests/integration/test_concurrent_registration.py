"""Several processes register one model name at once: every version is distinct and consecutive."""

import multiprocessing
from pathlib import Path
from typing import Any

import boto3
import pytest

from registry.artifacts import sha256_hex
from registry.registry import ModelRegistry
from registry.store import open_store
from tests.conftest import BUCKET, REGION
from tests.integration.registration_worker import register_many

PROCESSES = 4
REGISTRATIONS_PER_PROCESS = 6


def register_from_processes(registry_uri: str, endpoint: str | None) -> list[tuple[int, str]]:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    results = context.Queue()
    workers = [
        context.Process(
            target=register_many,
            args=(
                registry_uri,
                endpoint,
                "moons",
                list(range(p * 100, p * 100 + REGISTRATIONS_PER_PROCESS)),
                start,
                results,
            ),
        )
        for p in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    start.set()
    outcomes = [results.get(timeout=120) for _ in range(PROCESSES * REGISTRATIONS_PER_PROCESS)]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    return outcomes


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
    ModelRegistry(open_store(f"s3://{BUCKET}/team")).register("moons", moons_bytes)

    direct: Any = boto3.client("s3", region_name=REGION, endpoint_url=moto_server)
    keys = [item["Key"] for item in direct.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert "team/models/moons/versions/0000000001.json" in keys
