"""template.yaml: valid for cfn-lint, and in step with the code that serves it."""

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

from registry.config import LOCAL_ONLY_SETTINGS, SET_BY_LAMBDA, Settings
from registry.http.gateway import load_function_module, load_template, routes_from_template

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_cfn_lint_finds_no_errors_in_the_template() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(REPO_ROOT / "template.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_template_routes_equal_the_routes_the_resolvers_serve() -> None:
    template_routes = {
        (route.method.lower(), route.path) for route in routes_from_template(load_template())
    }
    served = set()
    for function in ("predict", "register"):
        app = load_function_module(REPO_ROOT / "functions" / function).app
        schema = json.loads(app.get_openapi_json_schema())
        served |= {(method, path) for path, item in schema["paths"].items() for method in item}
    assert template_routes == served
    assert {("post", "/classify"), ("post", "/models"), ("get", "/models")} <= served
    assert {("post", "/predict"), ("post", "/invocations"), ("get", "/ping")} <= served


def test_predict_routes_need_an_api_key_and_models_needs_iam() -> None:
    for route in routes_from_template(load_template()):
        if route.path in ("/classify", "/predict", "/invocations", "/ping"):
            assert route.api_key_required and not route.iam_auth
        else:
            assert route.path.startswith(("/models", "/runtime", "/batch-jobs"))
            assert route.iam_auth and not route.api_key_required


def test_the_functions_environment_names_only_real_settings() -> None:
    template = load_template()
    variables = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for resource in template["Resources"].values():
        environment = resource.get("Properties", {}).get("Environment", {})
        variables |= set(environment.get("Variables", {}))
    settings = {
        field.upper()
        for field in Settings.model_fields
        if field not in LOCAL_ONLY_SETTINGS | SET_BY_LAMBDA
    }
    assert settings <= variables
    assert {v for v in variables if not v.startswith("POWERTOOLS_")} <= settings


def test_the_dev_venv_runs_the_versions_the_layer_pins() -> None:
    pins = {}
    for line in (REPO_ROOT / "layer" / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            package, _, version = line.partition("==")
            pins[package.strip()] = version.strip()
    assert {"scikit-learn", "joblib", "numpy", "scipy"} <= set(pins)
    installed = {package: importlib.metadata.version(package) for package in pins}
    assert installed == pins


def test_the_committed_openapi_document_is_up_to_date() -> None:
    from export_openapi import OPENAPI_PATH, openapi_document

    assert OPENAPI_PATH.read_text() == openapi_document(), "stale: run `make openapi`"


def test_template_routes_equal_the_committed_openapi_document() -> None:
    from export_openapi import OPENAPI_PATH

    document = json.loads(OPENAPI_PATH.read_text())
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    template_routes = {
        (route.method.lower(), route.path) for route in routes_from_template(load_template())
    }
    assert documented == template_routes


def test_every_skipped_checkov_check_says_why() -> None:
    lines = (REPO_ROOT / ".checkov.yaml").read_text().splitlines()
    start = lines.index("skip-check:")
    skipped = [index for index in range(start + 1, len(lines)) if lines[index].startswith("  - ")]
    assert skipped, "no skipped check found"
    for index in skipped:
        assert lines[index - 1].strip().startswith("#"), f"{lines[index]} has no reason above it"


def test_the_predict_function_imports_no_pandas_until_a_model_needs_it() -> None:
    """pandas is in the layer for DataFrame models; the rest keep today's cold import."""
    app = str(REPO_ROOT / "functions" / "predict" / "app.py")
    script = (
        "import sys, importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('app', {app!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = {name.split(".")[0] for name in result.stdout.split()}
    assert "registry" in loaded and "pandas" not in loaded
