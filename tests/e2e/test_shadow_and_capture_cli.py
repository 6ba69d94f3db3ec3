"""Captured predictions and shadow reports end to end: the CLI against scripts/local_api.py,
whose records go to its registry's capture/ folder and whose batch jobs replay them."""

import csv
import io
import json
import os
from collections import Counter
from pathlib import Path

import joblib
import numpy
import pytest

from tests.support.http import cli, cli_json
from tests.support.models import distinct_model_bytes


def test_a_shadow_report_compares_the_shadows_answers_on_the_captured_rows(
    api_url: str, tmp_path: Path
) -> None:
    # Given two versions, the first serving `production` with the second as its shadow
    for seed in (1, 4):
        (tmp_path / f"m{seed}.joblib").write_bytes(distinct_model_bytes(seed))
        cli_json(api_url, "register", str(tmp_path / f"m{seed}.joblib"), "--name", "churn")
    alias = cli_json(api_url, "alias", "set", "churn", "production", "1", "--shadow", "2")
    assert (alias["version"], alias["shadow"]) == (1, 2)
    cli_json(api_url, "capture", "churn", "--sample-percent", "100")
    # When requests through the alias are captured
    rows = numpy.random.default_rng(0).normal(size=(120, 2)).round(4)
    for batch in numpy.array_split(rows, 3):
        answer = cli_json(
            api_url, "classify", "churn", "--alias", "production",
            "--instances", json.dumps(batch.tolist()),
        )  # fmt: skip
        assert answer["version"] == 1  # the shadow never answers
    # Then the capture reads back as CSV: the rows and the answers they got
    table = list(csv.DictReader(io.StringIO(cli(api_url, "capture", "churn").stdout)))
    primary = joblib.load(tmp_path / "m1.joblib")
    shadow = joblib.load(tmp_path / "m4.joblib")
    assert len(table) == 120
    captured = numpy.array([[float(row["0"]), float(row["1"])] for row in table])
    assert sorted(map(tuple, captured.tolist())) == sorted(map(tuple, rows.tolist()))
    predictions = numpy.array([int(row["prediction"]) for row in table])
    assert numpy.array_equal(predictions, primary.predict(captured))
    assert {row["alias"] for row in table} == {"production"}
    # And the shadow report replays them through version 2 and compares, exactly
    report = cli_json(
        api_url, "shadow", "report", "churn", "production", "--work-dir", str(tmp_path / "work")
    )
    expected_shadow = shadow.predict(captured)
    assert (report["replayed"], report["not_replayed"], report["shadow"]) == (120, 0, 2)
    assert report["primary_versions"] == [1]
    assert report["agreement"] == numpy.mean(predictions == expected_shadow)
    confusion = Counter(zip(map(str, predictions), map(str, expected_shadow), strict=True))
    assert {(c["primary"], c["shadow"]): c["rows"] for c in report["confusion"]} == confusion
    differing = report["most_different"]
    assert all(row["primary"] != row["shadow"] for row in differing)
    assert len(differing) == min(10, int((predictions != expected_shadow).sum()))
    text = cli(api_url, "shadow", "report", "churn", "production").stdout
    assert f"agreement: {report['agreement']:.1%}" in text and "primary -> shadow" in text


def test_a_shadow_report_without_a_shadow_or_captures_says_what_to_do(
    api_url: str, tmp_path: Path
) -> None:
    (tmp_path / "m.joblib").write_bytes(distinct_model_bytes(1))
    cli_json(api_url, "register", str(tmp_path / "m.joblib"), "--name", "churn")
    cli_json(api_url, "register", str(tmp_path / "m.joblib"), "--name", "churn")
    cli_json(api_url, "alias", "set", "churn", "production", "1")
    done = cli(api_url, "shadow", "report", "churn", "production", check=False)
    assert done.returncode == 1
    assert "--shadow SHADOW" in done.stderr and "Traceback" not in done.stderr
    (tmp_path / "m2.joblib").write_bytes(distinct_model_bytes(2))
    cli_json(api_url, "register", str(tmp_path / "m2.joblib"), "--name", "churn")
    cli_json(api_url, "alias", "set", "churn", "production", "1", "--shadow", "2")
    done = cli(api_url, "shadow", "report", "churn", "production", check=False)
    assert done.returncode == 1 and "--sample-percent" in done.stderr
    # a shadow that answers the alias itself is refused, saying why
    done = cli(api_url, "alias", "set", "churn", "production", "1", "--shadow", "1", check=False)
    assert done.returncode != 0 and "cannot also be its shadow" in done.stderr


def test_a_shadow_report_replays_through_s3_as_against_a_deployed_stack(
    moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a local server whose registry and batch data are in (moto's) S3, as deployed
    import boto3

    from tests.support.http import API_KEY, local_api_for
    from tests.support.registries import BUCKET, REGION

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)  # the CLI's boto3, as the server's
    env = {
        **os.environ, "PYTHONUNBUFFERED": "1", "REGISTRY_URI": f"s3://{BUCKET}/registry",
        "BATCH_INPUT_URI": f"s3://{BUCKET}/batch/input/",
        "BATCH_OUTPUT_URI": f"s3://{BUCKET}/batch/output/",
    }  # fmt: skip
    for seed in (1, 4):
        (tmp_path / f"m{seed}.joblib").write_bytes(distinct_model_bytes(seed))
    for url in local_api_for(env, "--api-key", API_KEY):
        for seed in (1, 4):
            cli_json(url, "register", str(tmp_path / f"m{seed}.joblib"), "--name", "churn")
        cli_json(url, "alias", "set", "churn", "production", "1", "--shadow", "2")
        cli_json(url, "capture", "churn", "--sample-percent", "100")
        rows = numpy.random.default_rng(1).normal(size=(30, 2)).round(4)
        cli_json(url, "classify", "churn", "--alias", "production",
                 "--instances", json.dumps(rows.tolist()))  # fmt: skip
        # When the report replays through S3 prefixes inside the batch job's own
        report = cli_json(
            url, "shadow", "report", "churn", "production",
            "--input-uri", f"s3://{BUCKET}/batch/input/reports/",
            "--output-uri", f"s3://{BUCKET}/batch/output/reports/",
        )  # fmt: skip
        # Then it compares exactly, and the rows and answers are in S3 under its own folder
        primary = joblib.load(tmp_path / "m1.joblib").predict(rows)
        shadow = joblib.load(tmp_path / "m4.joblib").predict(rows)
        assert report["replayed"] == 30
        assert report["agreement"] == numpy.mean(primary == shadow)
        s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_server)
        keys = [
            item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="batch/")["Contents"]
        ]
        assert any(key.startswith("batch/input/reports/shadow-") for key in keys)
        assert any(key.startswith("batch/output/reports/shadow-") for key in keys)
        # and a location outside the batch job's prefixes is refused, saying where to write
        refused = cli(
            url, "shadow", "report", "churn", "production",
            "--input-uri", f"s3://{BUCKET}/elsewhere/", "--output-uri", f"s3://{BUCKET}/batch/output/r/",
            check=False,
        )  # fmt: skip
        assert refused.returncode == 1 and "batch/input/" in refused.stderr
