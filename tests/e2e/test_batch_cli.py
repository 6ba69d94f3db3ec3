"""`model-registry batch` against scripts/local_api.py: the job runs in the local server's
pool, and writes what the batch function's steps write for the same input, byte for byte."""

from pathlib import Path
from typing import Any

import numpy
import pandas
import pytest

from registry.batching.jobs import BatchFormat
from registry.batching.running import BatchJobs, scoring_model
from registry.config import PicklePolicy
from registry.registry import ModelRegistry
from registry.store import LocalStore
from tests.support.batch import moons_csv
from tests.support.http import cli, cli_json
from tests.support.registries import registrar_for


class _NoRunner:
    def start(self, job: Any, run: int) -> None:
        pass

    def state(self, job: Any, run: int) -> None:
        return None


def test_the_cli_runs_a_local_batch_job_whose_output_equals_the_batch_functions(
    api_url: str, tmp_path: Path, moons_bytes: bytes, moons_model: Any
) -> None:
    # Given the blog's model registered through the local server, and 2,000 rows on disk
    (tmp_path / "moons.joblib").write_bytes(moons_bytes)
    cli_json(api_url, "register", str(tmp_path / "moons.joblib"), "--name", "moons")
    frame = moons_csv(tmp_path / "in.csv", 2000)
    # When the CLI runs a batch job and waits for it
    job = cli_json(
        api_url,
        "batch",
        "moons",
        "--input",
        str(tmp_path / "in.csv"),
        "--output",
        str(tmp_path / "out"),
        "--id-column",
        "id",
        "--probabilities",
        "--wait",
    )
    # Then every row is scored, in input order, exactly as the model predicts
    assert job["status"] == "SUCCEEDED", job
    assert (job["rows_read"], job["rows_scored"], job["rows_failed"]) == (2000, 2000, 0)
    output = pandas.read_csv(tmp_path / "out" / "part-000000.csv")
    assert output["id"].tolist() == frame["id"].tolist()
    features = pandas.read_csv(tmp_path / "in.csv")[["data1", "data2"]].to_numpy()
    assert numpy.array_equal(output["prediction"].to_numpy(), moons_model.predict(features))
    # And the batch function's steps write the same bytes for the same input
    registry = ModelRegistry(LocalStore(tmp_path / "steps-registry"))
    registrar_for(registry).register("moons", moons_bytes)
    steps = BatchJobs(registry, _NoRunner(), local=True)
    steps.load_model = lambda name, version: scoring_model(
        registry, name, version, PicklePolicy.CONVERT
    )
    submitted = steps.submit(
        "moons",
        input=str(tmp_path / "in.csv"),
        output=str(tmp_path / "steps-out"),
        format=BatchFormat.CSV,
        id_column="id",
        probabilities=True,
    )
    steps.plan(submitted.job_id)
    for part in steps.parts(submitted.job_id):
        steps.score(submitted.job_id, part)
    assert steps.summarize(submitted.job_id).rows_scored == 2000
    for name in ("part-000000.csv", "errors/part-000000.jsonl"):
        assert (tmp_path / "out" / name).read_bytes() == (
            tmp_path / "steps-out" / name
        ).read_bytes()


def test_batch_mistakes_say_what_to_send_and_status_names_the_next_step(
    api_url: str, tmp_path: Path, moons_bytes: bytes
) -> None:
    (tmp_path / "moons.joblib").write_bytes(moons_bytes)
    cli_json(api_url, "register", str(tmp_path / "moons.joblib"), "--name", "moons")
    (tmp_path / "in.csv").write_text("a,b,c\n1,2,3\n")
    refused = cli(
        api_url,
        "batch",
        "moons",
        "--input",
        str(tmp_path / "in.csv"),
        "--output",
        str(tmp_path / "out"),
        check=False,
    )
    assert refused.returncode == 1
    assert "invalid_batch_input" in refused.stderr or "422" in refused.stderr
    assert "takes 2 values a row" in refused.stderr
    missing = cli(api_url, "batch-status", "nothing-here", check=False)
    assert missing.returncode == 1 and "model-registry batch" in missing.stderr


def test_a_local_job_reads_and_writes_s3_through_the_endpoint_the_server_is_given(
    request: pytest.FixtureRequest,
    each_store_env: dict[str, str],
    tmp_path: Path,
    moons_bytes: bytes,
    moons_model: Any,
) -> None:
    # Given a local server over either store, and the input in moto's S3 on 127.0.0.1
    import boto3

    from tests.support.http import API_KEY, local_api_for
    from tests.support.registries import BUCKET, REGION

    endpoint = each_store_env.get("AWS_ENDPOINT_URL_S3")
    if endpoint is None:  # the directory store's server: give it moto's S3 too
        endpoint = request.getfixturevalue("moto_server")
        each_store_env = {**each_store_env, "AWS_ENDPOINT_URL_S3": endpoint}
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    frame = moons_csv(tmp_path / "in.csv", 1200)
    s3.put_object(Bucket=BUCKET, Key="data/in.csv", Body=(tmp_path / "in.csv").read_bytes())
    (tmp_path / "moons.joblib").write_bytes(moons_bytes)
    for url in local_api_for(each_store_env, "--api-key", API_KEY):
        cli_json(url, "register", str(tmp_path / "moons.joblib"), "--name", "moons")
        # When the CLI runs a job from S3 to S3
        job = cli_json(
            url, "batch", "moons", "--input", f"s3://{BUCKET}/data/in.csv", "--output",
            f"s3://{BUCKET}/scores/", "--id-column", "id", "--wait",
        )  # fmt: skip
        # Then the predictions are in S3, exactly the model's
        assert job["status"] == "SUCCEEDED", job
        body = s3.get_object(Bucket=BUCKET, Key="scores/part-000000.csv")["Body"]
        output = pandas.read_csv(body)
        assert output["id"].tolist() == frame["id"].tolist()
        expected = moons_model.predict(frame[["data1", "data2"]].to_numpy())
        assert numpy.array_equal(output["prediction"].to_numpy(), expected)
