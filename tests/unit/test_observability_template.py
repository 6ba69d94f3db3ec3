"""The template's observability: settings Powertools reads, the dashboard, the saved queries."""

import json
import re
from typing import Any

from aws_lambda_powertools.shared import constants
from render_dashboard import NAMESPACE, TEMPLATE_PATH, render_template

from registry.observability import (
    METRIC_DEFINITIONS,
    PREDICT_SERVICE,
    REGISTER_SERVICE,
    MetricName,
)

FUNCTION_SERVICES = {"PredictFunction": PREDICT_SERVICE, "RegisterFunction": REGISTER_SERVICE}
PSEUDO_PARAMETERS = {"AWS::Region", "AWS::StackName", "AWS::AccountId", "AWS::Partition"}
SEARCH_SCHEMA = re.compile(
    r"""SEARCH\('\{"([^"]+)",([\w,]+)\} MetricName="(\w+)"[^']*', '\w+', \d+\)"""
)


def resources_of(cloudformation: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        name: resource["Properties"]
        for name, resource in cloudformation["Resources"].items()
        if resource["Type"] == kind
    }


def filled(text: str) -> str:
    """The text with each ${Name} replaced as CloudFormation would, by a recognisable value."""
    return re.sub(r"\$\{([^}]+)\}", lambda match: f"filled-{match[1]}", text)


def dashboard_widgets(cloudformation: dict[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's widgets, its ${...} variables filled in as CloudFormation would."""
    (dashboard,) = resources_of(cloudformation, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["DashboardBody"]["Fn::Sub"]
    variables = set(re.findall(r"\$\{([^}]+)\}", body))
    known = set(cloudformation["Parameters"]) | set(cloudformation["Resources"])
    assert variables <= known | PSEUDO_PARAMETERS, variables - known - PSEUDO_PARAMETERS
    return list(json.loads(filled(body))["widgets"])


def graphed_metrics(widgets: list[dict[str, Any]]) -> list[tuple[str, str, tuple[str, ...], str]]:
    """(namespace, metric, dimension names, statistic) of every line, searches included."""
    lines = []
    for widget in widgets:
        for entry in widget.get("properties", {}).get("metrics", []):
            options = entry[-1] if isinstance(entry[-1], dict) else {}
            if "expression" in options:
                search = SEARCH_SCHEMA.search(options["expression"])
                if search:
                    namespace, dimensions, name = search.groups()
                    lines.append((namespace, name, tuple(sorted(dimensions.split(","))), "Sum"))
                continue
            namespace, name, *dimension_pairs = (part for part in entry if part is not options)
            dimensions = tuple(sorted(dimension_pairs[0::2]))
            lines.append((namespace, name, dimensions, options.get("stat", "")))
    return lines


def test_each_function_sets_the_service_namespace_level_and_sampling_powertools_reads(
    cloudformation: dict[str, Any],
) -> None:
    functions = resources_of(cloudformation, "AWS::Lambda::Function")
    for name, service in FUNCTION_SERVICES.items():
        variables = functions[name]["Environment"]["Variables"]
        assert variables[constants.SERVICE_NAME_ENV] == service
        assert variables[constants.METRICS_NAMESPACE_ENV] == {"Fn::Sub": NAMESPACE}
        assert variables[constants.POWERTOOLS_LOG_LEVEL_ENV] == {"Ref": "LogLevel"}
        assert variables[constants.LOGGER_LOG_SAMPLING_RATE] == {"Ref": "LogDebugSampleRate"}
    sampling = cloudformation["Parameters"]["LogDebugSampleRate"]
    assert (sampling["Type"], sampling["MinValue"], sampling["MaxValue"]) == ("Number", 0, 1)
    assert cloudformation["Parameters"]["LogLevel"]["Default"] == "INFO"


def test_the_templates_dashboard_is_the_one_rendered_from_the_metric_names() -> None:
    template = TEMPLATE_PATH.read_text()
    assert render_template(template) == template, "stale: run `make dashboard`"


def test_the_dashboard_is_valid_json_of_widgets_inside_a_24_column_grid(
    cloudformation: dict[str, Any],
) -> None:
    widgets = dashboard_widgets(cloudformation)

    assert len(widgets) > 10
    for widget in widgets:
        assert widget["type"] in {"metric", "text"}
        assert widget["x"] + widget["width"] <= 24
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == "filled-AWS::Region"
            assert widget["properties"]["title"]


def test_the_dashboard_graphs_only_metrics_and_dimension_sets_the_code_emits(
    cloudformation: dict[str, Any],
) -> None:
    ours = filled(NAMESPACE)
    lines = graphed_metrics(dashboard_widgets(cloudformation))

    graphed = [line for line in lines if line[0] == ours]
    assert len(graphed) > 10
    for _, name, dimensions, _ in graphed:
        assert name in METRIC_DEFINITIONS, name
        emitted_sets = {
            tuple(sorted(s)) for s in METRIC_DEFINITIONS[MetricName(name)].dimension_sets
        }
        assert dimensions in emitted_sets, (name, dimensions)
    assert {line[0] for line in lines} == {ours, "AWS/Lambda", "AWS/ApiGateway"}


def test_the_dashboard_shows_rate_latency_cache_errors_models_and_lambda_health(
    cloudformation: dict[str, Any],
) -> None:
    lines = set(graphed_metrics(dashboard_widgets(cloudformation)))
    ours = filled(NAMESPACE)
    service = ("service",)

    assert (ours, "Requests", service, "Sum") in lines
    assert {(ours, "Latency", service, stat) for stat in ("p50", "p99")} <= lines
    assert {(ours, name, service, "Sum") for name in ("CacheHits", "CacheMisses")} <= lines
    assert (ours, "Errors", ("code", "service"), "Sum") in lines
    assert (ours, "Requests", ("model", "service"), "Sum") in lines
    lambda_lines = {(name, stat) for namespace, name, _, stat in lines if namespace == "AWS/Lambda"}
    assert {("Duration", "p99"), ("Throttles", "Sum"), ("ConcurrentExecutions", "Maximum")} <= (
        lambda_lines
    )
    expressions = [
        entry[0]["expression"]
        for widget in dashboard_widgets(cloudformation)
        for entry in widget.get("properties", {}).get("metrics", [])
        if "expression" in entry[0]
    ]
    assert "100 * hits / (hits + misses)" in expressions


def test_saved_queries_find_slow_requests_errors_traffic_and_one_request(
    cloudformation: dict[str, Any],
) -> None:
    queries = resources_of(cloudformation, "AWS::Logs::QueryDefinition")
    names = {query["Name"]["Fn::Sub"]: query for query in queries.values()}
    assert set(names) == {
        "${AWS::StackName}/slowest-requests",
        "${AWS::StackName}/errors-by-code",
        "${AWS::StackName}/traffic-by-model-version",
        "${AWS::StackName}/request-by-correlation-id",
    }
    groups = {"Ref": "PredictFunctionLogGroup"}, {"Ref": "RegisterFunctionLogGroup"}
    for query in queries.values():
        assert query["LogGroupNames"] and all(group in groups for group in query["LogGroupNames"])
    assert "sort latency_ms desc" in names["${AWS::StackName}/slowest-requests"]["QueryString"]
    assert (
        "by service, route, status, error_code"
        in (names["${AWS::StackName}/errors-by-code"]["QueryString"])
    )
    assert "by model, version" in names["${AWS::StackName}/traffic-by-model-version"]["QueryString"]
    assert (
        "filter correlation_id ="
        in (names["${AWS::StackName}/request-by-correlation-id"]["QueryString"])
    )
