"""The template's older runtime lines: rendered from layer/lines/, and wired by name.

Register finds an older line's validator as VALIDATOR_FUNCTION-<minor>, and the front predict
function its predict function as LINE_FUNCTION_PREFIX<minor> (registry/config.py); the
template names the functions so, and the roles allow exactly those names.
"""

from typing import Any

from render_lines import TEMPLATE_PATH, logical_id, older_lines, render_template

from registry.config import Settings
from registry.http.gateway import load_template
from tests.support.cloudformation import resources_of


def test_the_template_serves_the_newest_line_and_the_two_before_it() -> None:
    assert older_lines() == ["1.8", "1.7"]
    template = TEMPLATE_PATH.read_text()
    assert render_template(template, older_lines()) == template, "run `make lines`"


def test_adding_a_folder_adds_a_line_with_its_layer_and_functions() -> None:
    template = TEMPLATE_PATH.read_text()

    rendered = render_template(template, ["1.10", "1.8", "1.7"])

    assert logical_id("1.10") == "Line110"
    for resource in ("Line110Layer", "Line110ValidateFunction", "Line110PredictFunction"):
        assert f"\n  {resource}:\n" in rendered
    assert 'OLDER_LINES: "1.10 1.8 1.7"' in rendered
    assert "(layer/lines/1.10/)" in rendered


def test_register_and_predict_find_each_lines_functions_by_the_names_the_template_gives(
    cloudformation: dict[str, Any],
) -> None:
    functions = resources_of(cloudformation, "AWS::Lambda::Function")
    stack = "stack"

    def variables(name: str) -> dict[str, str]:
        found = functions[name]["Environment"]["Variables"]
        return {
            key: value["Fn::Sub"].replace("${AWS::StackName}", stack)
            if isinstance(value, dict) and "Fn::Sub" in value
            else value
            for key, value in found.items()
            if key in ("OLDER_LINES", "LINE_FUNCTION_PREFIX")
        }

    names = {
        key: function["FunctionName"]["Fn::Sub"].replace("${AWS::StackName}", stack)
        for key, function in functions.items()
        if isinstance(function.get("FunctionName"), dict)
    }
    register = Settings.model_validate(
        {"validator_function": names["ValidateFunction"], **_lowered(variables("RegisterFunction"))}
    )
    predict = Settings.model_validate(_lowered(variables("PredictFunction")))

    assert register.line_validator_functions() == {
        "1.8": names["Line18ValidateFunction"],
        "1.7": names["Line17ValidateFunction"],
    }
    assert predict.line_predict_functions() == {
        "1.8": names["Line18PredictFunction"],
        "1.7": names["Line17PredictFunction"],
    }
    # Each line's functions run on that line's layer, and its predict function on line.py.
    template = load_template()["Resources"]
    for minor in ("18", "17"):
        for role in ("Validate", "Predict"):
            layers = template[f"Line{minor}{role}Function"]["Properties"]["Layers"]
            assert layers == [f"Line{minor}Layer"]  # the loader reads !Ref as the name
        assert template[f"Line{minor}PredictFunction"]["Properties"]["Handler"] == (
            "line.lambda_handler"
        )


def _lowered(variables: dict[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in variables.items()}
