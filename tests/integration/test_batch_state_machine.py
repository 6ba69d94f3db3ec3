"""The batch state machine, executed by moto's Step Functions engine.

The definition is the template's (statemachine/batch.asl.json), with the values the template's
DefinitionSubstitutions give but one: the children's execution type, EXPRESS deployed, is
STANDARD here, the only one moto's parser reads. moto cannot run a Lambda function without
Docker, so the engine's Lambda client is a stand-in whose invoke() runs the batch function's
handler in this process, on the payload the task built, against moto's S3: the Map, its
ItemReader over the plan, the ItemSelector, the retries, the ResultWriter and the Choice on
the summary run as written.
"""

import io
import json
import time
from pathlib import Path
from typing import Any

import boto3
import numpy
import pandas
import pytest
from moto import mock_aws
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

from registry.batching.jobs import BatchFormat, JobStatus
from registry.batching.state_machine import StepFunctionsRunner
from registry.http import service
from registry.http.gateway import LocalLambdaContext, load_function_module
from registry.registry import ModelRegistry
from registry.store import S3Store
from tests.support.batch import moons_csv
from tests.support.models import joblib_of
from tests.support.registries import BUCKET, REGION, registrar_for

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFINITION = REPO_ROOT / "statemachine" / "batch.asl.json"
ROLE = "arn:aws:iam::123456789012:role/batch-state-machine"


def substituted(substitutions: dict[str, str]) -> str:
    """The definition as CloudFormation's DefinitionSubstitutions make it."""
    text = DEFINITION.read_text()
    for name, value in substitutions.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text
    return text


FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:stack-batch"


class BatchFunctionStandIn:
    """boto3's Lambda client's invoke(), for the batch function: its handler, here."""

    def __init__(self) -> None:
        self.handler = load_function_module(REPO_ROOT / "functions" / "batch").lambda_handler
        self.payloads: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["FunctionName"] == FUNCTION_ARN
        payload = json.loads(kwargs["Payload"])
        self.payloads.append(payload)
        try:
            answer = self.handler(payload, LocalLambdaContext("BatchFunction"))
        except Exception as exc:  # as Lambda answers an unhandled error
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            body = json.dumps(error).encode()
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(body)}
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(answer).encode())}


@pytest.fixture
def batch_function(monkeypatch: pytest.MonkeyPatch) -> BatchFunctionStandIn:
    stand_in = BatchFunctionStandIn()
    real = lambda_eval_utils.boto_client_for

    def client_for(*args: Any, **kwargs: Any) -> Any:
        service_name = kwargs.get("service", args[1] if len(args) > 1 else None)
        return stand_in if service_name == "lambda" else real(*args, **kwargs)

    monkeypatch.setattr(lambda_eval_utils, "boto_client_for", client_for)
    return stand_in


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("REGISTRY_URI", f"s3://{BUCKET}/registry")
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        service.reset()
        yield s3, boto3.client("stepfunctions", region_name=REGION)
        service.reset()


def start_machine(sfn: Any, tolerated: str = "0") -> str:
    return sfn.create_state_machine(
        name="registry-batch",
        roleArn=ROLE,
        definition=substituted(
            {
                "BatchFunctionArn": FUNCTION_ARN,
                "RegistryBucketName": BUCKET,
                "BatchMaxConcurrency": "4",
                "BatchToleratedFailurePercentage": tolerated,
                # The template's is EXPRESS; moto's parser reads STANDARD children only.
                "BatchChildExecutionType": "STANDARD",
            }
        ),
    )["stateMachineArn"]


def wait_for(sfn: Any, execution_arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        execution = sfn.describe_execution(executionArn=execution_arn)
        if execution["status"] != "RUNNING":
            return execution
        assert time.monotonic() < deadline, "the execution did not end"
        time.sleep(0.1)


def test_a_job_runs_through_the_state_machine_and_writes_each_part_in_order(
    aws: Any, batch_function: BatchFunctionStandIn, tmp_path: Path, moons_model: Any
) -> None:
    s3, sfn = aws
    # Given the blog's model, 2,500 rows in S3, and the state machine
    registry = ModelRegistry(S3Store(BUCKET, "registry", s3_client=s3))
    registrar_for(registry).register("moons", joblib_of(moons_model))
    frame = moons_csv(tmp_path / "in.csv", 2500)
    s3.put_object(Bucket=BUCKET, Key="batch/input/in.csv", Body=(tmp_path / "in.csv").read_bytes())
    machine = start_machine(sfn)
    # When the job is submitted through the deployed runner
    jobs = service.batch_jobs()
    jobs.runner = StepFunctionsRunner(sfn, machine)
    job = jobs.submit(
        "moons",
        input=f"s3://{BUCKET}/batch/input/in.csv",
        output=f"s3://{BUCKET}/batch/output/scores/",
        format=BatchFormat.CSV,
        id_column="id",
        rows_per_part=1000,
    )
    execution = wait_for(sfn, jobs.runner.execution_arn(job, 1))
    # Then it succeeded, each part was one call with its part, in input order
    assert execution["status"] == "SUCCEEDED", execution
    actions = [payload["action"] for payload in batch_function.payloads]
    assert actions[0] == "plan" and actions[-1] == "summarize" and actions.count("score") == 3
    scored = sorted(p["part"]["part"] for p in batch_function.payloads if p["action"] == "score")
    assert scored == [0, 1, 2]
    status = jobs.status(job.job_id)
    assert (status.status, status.rows_read, status.rows_scored) == (
        JobStatus.SUCCEEDED,
        2500,
        2500,
    )
    # And the output, part by part, is the model's answer on every row, in input order
    parts = [
        pandas.read_csv(
            s3.get_object(Bucket=BUCKET, Key=f"batch/output/scores/part-00000{n}.csv")["Body"]
        )
        for n in range(3)
    ]
    output = pandas.concat(parts, ignore_index=True)
    assert output["id"].tolist() == frame["id"].tolist()
    expected = moons_model.predict(frame[["data1", "data2"]].to_numpy())
    assert numpy.array_equal(output["prediction"].to_numpy(), expected)
    # And the Distributed Map's ResultWriter wrote its manifest under the job's records
    results = s3.list_objects_v2(Bucket=BUCKET, Prefix="registry/batch-jobs/_map-runs/")
    assert any(item["Key"].endswith("manifest.json") for item in results.get("Contents", []))


def test_a_job_past_its_tolerated_failures_fails_the_execution_with_the_reason(
    aws: Any, batch_function: BatchFunctionStandIn, moons_model: Any
) -> None:
    s3, sfn = aws
    registry = ModelRegistry(S3Store(BUCKET, "registry", s3_client=s3))
    registrar_for(registry).register("moons", joblib_of(moons_model))
    body = "data1,data2\n0.1,0.2\nnot,a number\n0.3,0.4\n"
    s3.put_object(Bucket=BUCKET, Key="batch/input/bad.csv", Body=body.encode())
    machine = start_machine(sfn)
    jobs = service.batch_jobs()
    jobs.runner = StepFunctionsRunner(sfn, machine)
    job = jobs.submit(
        "moons",
        input=f"s3://{BUCKET}/batch/input/bad.csv",
        output=f"s3://{BUCKET}/batch/output/bad/",
        format=BatchFormat.CSV,
    )
    execution = wait_for(sfn, jobs.runner.execution_arn(job, 1))
    assert execution["status"] == "FAILED"
    assert execution.get("error") == "BatchJobFailed"
    assert "33.33% of rows failed (1 of 3)" in execution.get("cause", "")
    status = jobs.status(job.job_id)
    assert status.status is JobStatus.FAILED and status.rows_scored == 2
    assert status.first_errors[0].position == 1


def test_a_run_that_ended_without_its_summary_fails_the_job_with_the_engines_reason(
    aws: Any, moons_model: Any
) -> None:
    # Given a job whose run the engine ended before any step ran (here, a machine that fails)
    s3, sfn = aws
    registry = ModelRegistry(S3Store(BUCKET, "registry", s3_client=s3))
    registrar_for(registry).register("moons", joblib_of(moons_model))
    s3.put_object(Bucket=BUCKET, Key="batch/input/in.csv", Body=b"a,b\n0.1,0.2\n")
    failing = {
        "StartAt": "Stop",
        "States": {
            "Stop": {"Type": "Fail", "Error": "BatchFunctionTimedOut", "Cause": "the run timed out"}
        },
    }
    machine = sfn.create_state_machine(
        name="registry-batch", roleArn=ROLE, definition=json.dumps(failing)
    )["stateMachineArn"]
    jobs = service.batch_jobs()
    jobs.runner = StepFunctionsRunner(sfn, machine)
    job = jobs.submit(
        "moons",
        input=f"s3://{BUCKET}/batch/input/in.csv",
        output=f"s3://{BUCKET}/batch/output/x/",
        format=BatchFormat.CSV,
        job_id="nightly",
    )
    assert wait_for(sfn, jobs.runner.execution_arn(job, 1))["status"] == "FAILED"
    # Then its status is FAILED, with the engine's reason, and it may run again under its id
    status = jobs.status("nightly")
    assert status.status is JobStatus.FAILED
    assert status.reason is not None and "the run timed out" in status.reason
    again = jobs.submit(
        "moons",
        input=f"s3://{BUCKET}/batch/input/in.csv",
        output=f"s3://{BUCKET}/batch/output/x/",
        format=BatchFormat.CSV,
        job_id="nightly",
    )
    assert wait_for(sfn, jobs.runner.execution_arn(again, 2))["status"] == "FAILED"
