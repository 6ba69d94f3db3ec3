"""template.yaml: valid for cfn-lint, and in step with the code that serves it."""

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

from local_api import load_function_module, load_template, routes_from_template

from registry.config import Settings

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
    assert template_routes == served == {("post", "/classify"), ("post", "/models")}


def test_classify_needs_an_api_key_and_models_needs_iam() -> None:
    routes = {route.path: route for route in routes_from_template(load_template())}
    assert routes["/classify"].api_key_required and not routes["/classify"].iam_auth
    assert routes["/models"].iam_auth and not routes["/models"].api_key_required


def test_the_functions_environment_names_only_real_settings() -> None:
    template = load_template()
    variables = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for resource in template["Resources"].values():
        environment = resource.get("Properties", {}).get("Environment", {})
        variables |= set(environment.get("Variables", {}))
    settings = {field.upper() for field in Settings.model_fields}
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
