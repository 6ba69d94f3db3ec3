"""Runtime lines as the template deploys them: functions found by name, invoked by boto3.

The settings the template gives register and the front predict function (VALIDATOR_FUNCTION,
OLDER_LINES, LINE_FUNCTION_PREFIX) build the registry through the service factories, with
boto3's Lambda client replaced by a stand-in that runs each function's own handler: the
validator's (functions/validate: registry.inspecting.worker, in a child of the line's
interpreter) and the older line's predict function (functions/predict/line.py, run by the
1.8 interpreter in a process of its own per invocation, reading the registry from moto's S3
on 127.0.0.1). A model trained with scikit-learn 1.8 is registered, validated by the 1.8
validator, and predicted by the 1.8 predict function, exactly as scikit-learn 1.8 answers.
"""

import base64
import io
import json
import os
import subprocess
import sys
from typing import Any

import numpy
import pytest

from registry.config import PicklePolicy
from registry.http import service
from registry.inputs import RequestRows
from registry.registering.validator import ChildProcessInvoker
from registry.serving.routing import LineUnavailableError
from tests.support.lines import REPO_ROOT, line_python, trained_in
from tests.support.registries import BUCKET

# The Lambda runtime's part: call the handler on the event, answer its return value as JSON.
RUN_HANDLER = r"""
import json, sys
sys.path[:0] = [sys.argv[1]]
import line
print(json.dumps(line.lambda_handler(json.load(sys.stdin), None)))
"""


class LambdaStandIn:
    """boto3's Lambda client's invoke(), for the functions of a stack named "stack"."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = environment
        self.invoked: list[str] = []
        self.validators = {
            "stack-validate": service.local_validator_process(PicklePolicy.CONVERT),
            "stack-validate-1-8": ChildProcessInvoker(python=line_python()),
        }

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        name = kwargs["FunctionName"]
        self.invoked.append(name)
        if name in self.validators:
            return self.validators[name].invoke(**kwargs)
        assert name == "stack-predict-1-8", name
        done = subprocess.run(
            [line_python(), "-c", RUN_HANDLER, str(REPO_ROOT / "functions" / "predict")],
            input=kwargs["Payload"],
            capture_output=True,
            env=self.environment,
            timeout=120,
        )
        if done.returncode != 0:
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(b"{}")}
        return {"StatusCode": 200, "Payload": io.BytesIO(done.stdout.splitlines()[-1])}

    def close(self) -> None:
        self.validators["stack-validate-1-8"].close()


@pytest.fixture
def deployed(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    registry_uri = f"s3://{BUCKET}/registry"
    for variable, value in {
        "REGISTRY_URI": registry_uri,
        "AWS_ENDPOINT_URL_S3": moto_server,
        "VALIDATOR_FUNCTION": "stack-validate",
        "OLDER_LINES": "1.8",
        "LINE_FUNCTION_PREFIX": "stack-predict-",
    }.items():
        monkeypatch.setenv(variable, value)
    # What the template gives the line's predict function.
    line_environment = {
        key: os.environ[key]
        for key in ("PATH", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    line_environment |= {
        "PYTHONPATH": str(REPO_ROOT),
        "REGISTRY_URI": registry_uri,
        "AWS_ENDPOINT_URL_S3": moto_server,
    }
    lambda_service = LambdaStandIn(line_environment)
    monkeypatch.setattr(service, "lambda_client", lambda max_attempts=1: lambda_service)
    yield lambda_service
    lambda_service.close()


def test_an_older_lines_model_is_validated_and_predicted_by_that_lines_functions(
    deployed: LambdaStandIn,
) -> None:
    trained = trained_in(line_python())
    linear = trained["linear"]

    registration = service.registrar().register("wine", base64.b64decode(linear["joblib"]))
    answer = service.predictor().predict("wine", None, RequestRows(trained["rows"]), None, True)

    assert registration.info.manifest.validated_line == "1.8"
    assert answer.line == "1.8"
    assert numpy.array_equal(answer.predictions, linear["predictions"])
    assert numpy.array_equal(answer.probabilities, linear["probabilities"])
    assert deployed.invoked == ["stack-validate-1-8", "stack-predict-1-8"]


def test_a_line_that_is_not_deployed_is_a_503_that_says_what_to_do(
    deployed: LambdaStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = trained_in(line_python())
    service.registrar().register("wine", base64.b64decode(trained["linear"]["joblib"]))
    monkeypatch.setenv("OLDER_LINES", "")
    service.reset()

    with pytest.raises(LineUnavailableError) as refused:
        service.predictor().predict("wine", None, RequestRows(trained["rows"]))

    assert (refused.value.code, refused.value.http_status) == ("line_unavailable", 503)
    assert "model-registry runtime check --line 1.9" in refused.value.message
    assert json.dumps(deployed.invoked) == '["stack-validate-1-8"]'


# The front predict function, in a process of its own: predicts and says what it imported.
FRONT_PREDICTS = r"""
import json, sys
from registry.http import service
answer = service.predictor().predict("forest", None, json.loads(sys.argv[1]), None, True)
print(json.dumps([answer.predictions, answer.probabilities, answer.line]))
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"sklearn", "scipy", "joblib"})))
"""


def test_an_older_lines_forest_is_served_by_the_front_without_scikit_learn(
    deployed: LambdaStandIn,
) -> None:
    trained = trained_in(line_python())
    forest = trained["forest"]

    registration = service.registrar().register("forest", base64.b64decode(forest["joblib"]))
    environment = {**deployed.environment, "OLDER_LINES": "1.8"}
    environment["LINE_FUNCTION_PREFIX"] = "stack-predict-"
    done = subprocess.run(
        [sys.executable, "-c", FRONT_PREDICTS, json.dumps(trained["rows"])],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=True,
    )

    manifest = registration.info.manifest
    assert (manifest.validated_line, manifest.serving_format.value) == ("1.8", "compiled")
    answer, imported = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    predictions, probabilities, line = answer
    assert line is None  # the front served it
    assert numpy.array_equal(predictions, forest["predictions"])
    assert numpy.array_equal(probabilities, forest["probabilities"])
    assert imported == []
    assert deployed.invoked == ["stack-validate-1-8"]
