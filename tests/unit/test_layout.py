"""Which code runs where: the packages of registry/ by role, and what each function imports.

The core (config, errors, manifest, store, registry, the validator's contract, observability,
artifact formats, signatures, inputs) sits at the top of registry/; under it, a package per
role. Arrows run only downward: the core imports no role; a role imports the core and itself;
http (what the handlers share) may also use registering and serving; the client imports
nothing of the registry but itself. Then each Lambda function is run, in a process of its own,
and what it imported is read from sys.modules.
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "registry"
ROLES = ("registering", "inspecting", "serving", "batching", "http", "client")
MAY_IMPORT = {
    "core": {"core"},
    "registering": {"core", "registering"},
    "inspecting": {"core", "inspecting"},
    "serving": {"core", "serving"},
    # A batch job scores with the predictor's own loading and fast paths.
    "batching": {"core", "serving", "batching"},
    "http": {"core", "registering", "serving", "batching", "http"},
    "client": {"client"},
}


def role_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in ROLES else "core"


def imports_of(path: Path) -> set[str]:
    """Every registry module the file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    return {name for name in found if name == "registry" or name.startswith("registry.")}


def test_arrows_between_the_packages_run_only_downward() -> None:
    broken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        allowed = MAY_IMPORT[role_of(module)]
        for imported in sorted(imports_of(path)):
            if imported != "registry" and role_of(imported) not in allowed:
                broken.append(f"{module} imports {imported}")
    assert broken == []
    assert {role_of(f"registry.{role}.x") for role in ROLES} == set(ROLES)


# Each function in a process of its own: it handles a real request, then says what it imported.
FUNCTION_RUN = r"""
import base64, importlib.util, io, json, sys
from pathlib import Path
function, artifact = sys.argv[1], Path(sys.argv[2]).read_bytes()
spec = importlib.util.spec_from_file_location("app", f"functions/{function}/app.py")
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)

class Context:
    function_name = function; memory_limit_in_mb = 1024; aws_request_id = "layout"
    invoked_function_arn = f"arn:aws:lambda:eu-west-1:123456789012:function:{function}"

def call(method, path, body, query=None):
    event = {"httpMethod": method, "path": path, "resource": path, "headers": {},
             "queryStringParameters": query, "body": json.dumps(body),
             "requestContext": {"requestId": "layout", "identity": {}}}
    answer = app.lambda_handler(event, Context())
    assert answer["statusCode"] in (200, 201), answer["body"][:500]

if function == "register":
    body = {"artifact": base64.b64encode(artifact).decode()}
    call("POST", "/models/layout/versions", body)
    call("GET", "/models/layout", None)
elif function == "predict":
    call("POST", "/predict", {"instances": [[0.5, 0.2]]}, {"model": "layout"})
else:
    payload = {"format": "joblib", "max_bytes": 10**7,
               "artifact_base64": base64.b64encode(artifact).decode()}
    assert "estimator" in app.lambda_handler(payload, None)
print(json.dumps(sorted(sys.modules)))
"""
LOADERS = {"sklearn", "joblib", "skops", "scipy", "registry.artifacts"}
NEVER = {
    "register": {"registry.inspecting", "registry.serving", *LOADERS},
    "predict": {"registry.registering", "registry.inspecting"},
    "validate": {"registry.registering", "registry.http", "registry.serving", *LOADERS},
}
NEEDED = {
    "register": "registry.registering.registration",
    "predict": "registry.serving.predictor",
    "validate": "registry.inspecting.worker",
}


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory store the register function registers the blog's model in, first."""
    return tmp_path_factory.mktemp("layout")


def run_function(function: str, store: Path, artifact: Path) -> set[str]:
    env = {**os.environ, "REGISTRY_URI": str(store / "registry"), "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", FUNCTION_RUN, function, str(artifact)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_each_function_imports_only_what_its_role_needs(
    registry_dir: Path, moons_bytes: bytes
) -> None:
    artifact = registry_dir / "moons.joblib"
    artifact.write_bytes(moons_bytes)
    for function in ("register", "predict", "validate"):  # predict serves what register stored
        loaded = run_function(function, registry_dir, artifact)

        assert NEEDED[function] in loaded, function  # it really ran
        imported = {
            name
            for name in loaded
            for never in NEVER[function]
            if name == never or name.startswith(f"{never}.")
        }
        assert imported == set(), function
