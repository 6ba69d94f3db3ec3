"""The functions as `make package` built them, in a bare interpreter, as Lambda runs them.

Only the built function folder, its layer and boto3 (which the Lambda runtime
provides) are on the path: no site-packages, no repository. The slimmed layer
must still import every scikit-learn estimator and serve a real request.
"""

import base64
import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import skops.io
from package_sizes import BUDGET, BUILD_DIR, function_sizes

# What the Lambda Python runtime provides besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")

# The built validator function, in a bare interpreter of its own: what register invokes.
VALIDATE_SCRIPT = r"""
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
import app
answer = app.lambda_handler(json.loads(sys.stdin.buffer.read()), None)
sys.stdout.write("ANSWER " + json.dumps(answer))
"""

BARE_SCRIPT = r"""
import base64, io, json, subprocess, sys
sys.path[:0] = json.loads(sys.argv[1])
import app as register_app  # the register function's folder comes first
sys.path.remove(json.loads(sys.argv[1])[0])
del sys.modules["app"]
sys.path.insert(0, sys.argv[2])
import app as predict_app
assert "site-packages" not in " ".join(sys.path), sys.path

from sklearn.utils import all_estimators
estimators = len(all_estimators())

class Context:
    function_name = "bare"; memory_limit_in_mb = 1024; aws_request_id = "r"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:bare"

def event(method, path, body, query=None):
    return {"httpMethod": method, "path": path, "resource": path, "headers": {},
            "queryStringParameters": query, "body": json.dumps(body),
            "requestContext": {"requestId": "bare-1", "identity": {}}}

class BuiltValidator:
    # boto3's Lambda client's invoke(), answered by the built validate function's handler
    def invoke(self, FunctionName, InvocationType, Payload):
        done = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", sys.argv[5], sys.argv[4]],
                              input=Payload, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        answer = done.stdout.decode().rpartition("ANSWER ")[2].encode()
        return {"StatusCode": 200, "Payload": io.BytesIO(answer)}

from registry.http import service
from registry.registering.validator import Validator
service.validator = lambda: Validator(BuiltValidator(), "validate", service.model_registry().store,
                                      service.settings().max_artifact_bytes)

import pandas  # in the layer without its test suite, for the models that need a DataFrame
outcome = {"estimators": estimators, "pandas": str(pandas.DataFrame({"a": [0.5]}).dtypes["a"])}
for name, path in (("moons", sys.argv[3]), ("moons-skops", sys.argv[6])):
    artifact = base64.b64encode(open(path, "rb").read()).decode()
    registered = register_app.lambda_handler(
        event("POST", "/models", {"name": name, "artifact": artifact}), Context())
    classified = predict_app.lambda_handler(
        event("POST", "/classify", {"data1": "0.5", "data2": "0.2"}, {"model": name}), Context())
    outcome[name] = {"register": registered["statusCode"],
                     "classify": json.loads(classified["body"])}
print("RESULT " + json.dumps(outcome))
"""


@pytest.fixture(scope="module")
def built() -> Path:
    assert (BUILD_DIR / "template.yaml").exists(), "no build: run `make package` (make test does)"
    return BUILD_DIR


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """boto3 and its dependencies alone, as the Lambda runtime has them."""
    runtime = tmp_path_factory.mktemp("lambda-runtime")
    for package in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin is not None
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)
    return runtime


def test_every_function_fits_in_80_percent_of_lambdas_limit(built: Path) -> None:
    sizes = function_sizes(built)
    newest = {"PredictFunction", "RegisterFunction", "ValidateFunction", "BatchFunction"}
    lines = {"18": "1.8.0", "17": "1.7.2"}
    older = {f"Line{minor}{role}Function" for minor in lines for role in ("Validate", "Predict")}
    assert set(sizes) == newest | older
    assert BUDGET == 209_715_200  # 80% of Lambda's unzipped limit
    for name, (code, layers) in sizes.items():
        assert code + sum(layers.values()) <= BUDGET, name
        # each with its own line's layer alone
        minor = name[4:6] if name in older else None
        assert list(layers) == [f"Line{minor}Layer" if minor else "RegistryLayer"], name
    for minor, version in lines.items():
        layer = built / f"Line{minor}Layer" / "python"
        assert (layer / f"scikit_learn-{version}.dist-info").is_dir()
        assert (layer / "registry").is_dir()


def test_the_build_leaves_out_tests_caches_and_boto3(built: Path) -> None:
    layer = built / "RegistryLayer" / "python"
    assert (layer / "sklearn").is_dir() and (layer / "registry").is_dir()
    assert not list(layer.rglob("tests"))
    # pip's own caches go; the only bytecode is layer/bytecode.py's (tested below)
    assert not [path for path in layer.rglob("*.pyc") if path.parent.name != "__pycache__"]
    assert not (layer / "boto3").exists() and not (layer / "botocore").exists()
    assert not (layer / "registry" / "gateway.py").exists()  # the local server's only
    # the front's handler, and the older lines' (functions/predict/line.py)
    assert sorted(path.name for path in (built / "PredictFunction").iterdir()) == [
        "app.py",
        "line.py",
    ]


def test_the_layer_ships_unchecked_bytecode_for_what_the_handlers_import_only(
    built: Path,
) -> None:
    layer = built / "RegistryLayer" / "python"
    compiled = {
        path.parent.parent / (path.name.split(".")[0] + ".py")
        for path in layer.rglob("__pycache__/*.pyc")
    }

    # PEP 552 flags: hash-based (bit 0) and not checked against the source (bit 1 clear),
    # so the file times zipping changes cannot make Python compile again on /opt.
    for pyc in layer.rglob("__pycache__/*.pyc"):
        header = pyc.read_bytes()[:16]
        assert header[:4] == importlib.util.MAGIC_NUMBER, pyc
        assert int.from_bytes(header[4:8], "little") == 0b01, pyc
        assert pyc.name.endswith(".cpython-312.pyc")
    assert all(source.exists() for source in compiled)
    for imported in (
        "registry/serving/predictor.py",
        "registry/compiled.py",
        "registry/inspecting/tree_compiler.py",
        "registry/http/api.py",
        "registry/inspecting/sandbox.py",
        "sklearn/ensemble/_forest.py",
        "sklearn/ensemble/_hist_gradient_boosting/gradient_boosting.py",
        "pandas/core/frame.py",
        "skops/io/_persist.py",
        "aws_lambda_powertools/event_handler/api_gateway.py",
        "pydantic/main.py",
    ):
        assert layer / imported in compiled, imported
    # what no handler imports (plotting, signal processing) stays source only
    for never_imported in ("pandas/plotting/_matplotlib/core.py", "scipy/signal/_signaltools.py"):
        assert layer / never_imported not in compiled, never_imported
    assert len(compiled) < len(list(layer.rglob("*.py")))


def test_the_built_handlers_serve_a_request_in_a_bare_interpreter(
    built: Path, runtime_dir: Path, tmp_path: Path, moons_bytes: bytes, moons_model: object
) -> None:
    artifact = tmp_path / "moons.joblib"
    artifact.write_bytes(moons_bytes)
    skops_artifact = tmp_path / "moons.skops"
    skops_artifact.write_bytes(skops.io.dumps(moons_model))
    validate_paths = [str(built / "ValidateFunction"), str(built / "RegistryLayer" / "python")]
    paths = [
        str(built / "RegisterFunction"),
        str(built / "RegistryLayer" / "python"),
        str(runtime_dir),
    ]
    env = {"REGISTRY_URI": str(tmp_path / "registry"), "PATH": "/usr/bin:/bin"}

    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-B",  # write no bytecode into the build: it would count in the sizes
            "-c",
            BARE_SCRIPT,
            json.dumps(paths),
            str(built / "PredictFunction"),
            str(artifact),
            json.dumps(validate_paths),
            VALIDATE_SCRIPT,
            str(skops_artifact),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    outcome = json.loads(line.removeprefix("RESULT "))
    assert outcome["estimators"] > 150
    assert outcome["pandas"] == "float64"
    expected = str(moons_model.predict([[0.5, 0.2]])[0])  # type: ignore[attr-defined]
    for name in ("moons", "moons-skops"):
        assert outcome[name]["register"] == 201, outcome
        assert outcome[name]["classify"] == {"prediction": expected, "model": name, "version": 1}


class ExitsAbnormally:
    """Unpickling ends the sandbox's child with status 3: the sandbox is tainted."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (eval, ("__import__('os')._exit(3)",))


def test_the_built_validator_exits_when_an_artifact_taints_its_sandbox(
    built: Path, tmp_path: Path, moons_bytes: bytes
) -> None:
    """As Lambda runs it (AWS_LAMBDA_FUNCTION_NAME set): the invocation whose artifact did not
    exit cleanly ends the process, so Lambda replaces the execution environment; the next
    invocation, in a new process, validates as usual."""
    paths = json.dumps([str(built / "ValidateFunction"), str(built / "RegistryLayer" / "python")])
    env = {"PATH": "/usr/bin:/bin", "AWS_LAMBDA_FUNCTION_NAME": "validate"}

    def invoke(artifact: bytes) -> subprocess.CompletedProcess[bytes]:
        payload = {"format": "joblib", "max_bytes": 10**7, "artifact_base64": ""}
        payload["artifact_base64"] = base64.b64encode(artifact).decode()
        return subprocess.run(
            [sys.executable, "-I", "-S", "-B", "-c", VALIDATE_SCRIPT, paths],
            input=json.dumps(payload).encode(),
            capture_output=True,
            env=env,
            timeout=120,
            cwd=tmp_path,
        )

    tainted = invoke(pickle.dumps(ExitsAbnormally()))
    clean = invoke(moons_bytes)

    assert tainted.returncode == 70 and b"ANSWER" not in tainted.stdout
    assert clean.returncode == 0, clean.stderr[-2000:]
    answer = json.loads(clean.stdout.decode().rpartition("ANSWER ")[2])
    assert answer["estimator"]["estimator_class"].endswith("RandomForestClassifier")
    assert answer["serving_format"] == "compiled"
