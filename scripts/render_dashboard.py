"""Render template.yaml's CloudWatch dashboard from the metric names in registry/observability.py.

    python scripts/render_dashboard.py          # rewrite the DashboardBody in template.yaml
    python scripts/render_dashboard.py --check  # exit 1 when template.yaml is stale

The body is JSON inside the template's `!Sub`, so ${AWS::Region}, the
functions' names and the stack's metric namespace are filled in at deploy
time. A test fails when the committed body differs from what this renders:
run `make dashboard` after changing a metric.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from registry.observability import (  # noqa: E402
    DEFAULT_METRICS_NAMESPACE,
    METRIC_DEFINITIONS,
    PREDICT_SERVICE,
    REGISTER_SERVICE,
    VALIDATE_SERVICE,
    MetricName,
)

TEMPLATE_PATH = REPO_ROOT / "template.yaml"
BODY_LINE = "      DashboardBody: !Sub |"
BODY_INDENT = " " * 8
# Must equal the functions' POWERTOOLS_METRICS_NAMESPACE in template.yaml (a test checks).
NAMESPACE = DEFAULT_METRICS_NAMESPACE + "/${AWS::StackName}"
REGION = "${AWS::Region}"
FUNCTION_NAMES = {
    PREDICT_SERVICE: "${PredictFunction}",
    REGISTER_SERVICE: "${RegisterFunction}",
    VALIDATE_SERVICE: "${ValidateFunction}",
}
# RegistryApi's Name and stage, as the 5XX alarm names them.
API_DIMENSIONS = ["ApiName", "${AWS::StackName}-api", "Stage", "${StageName}"]
PERIOD = 60
WIDTH, HEIGHT, COLUMNS = 8, 6, 3


def metric(name: MetricName, service: str, **options: Any) -> list[Any]:
    """One of our metrics, under its [service] dimension set."""
    if service not in METRIC_DEFINITIONS[name].services:
        raise ValueError(f"the {service} function does not emit {name}")
    return [NAMESPACE, str(name), "service", service, options]


def search(name: MetricName, dimension: str, service: str | None = None) -> dict[str, Any]:
    """A line per value of one dimension of the metric (per model, per error code)."""
    if ("service", dimension) not in METRIC_DEFINITIONS[name].dimension_sets:
        raise ValueError(f"{name} has no ({dimension}, service) dimension set")
    service_term = f' service="{service}"' if service else ""
    term = f'{{"{NAMESPACE}",{dimension},service}} MetricName="{name}"{service_term}'
    return {"expression": f"SEARCH('{term}', 'Sum', {PERIOD})", "id": f"by_{dimension}"}


def lambda_metric(name: str, service: str, **options: Any) -> list[Any]:
    return ["AWS/Lambda", name, "FunctionName", FUNCTION_NAMES[service], options]


def graph(title: str, metrics: list[Any], **properties: Any) -> dict[str, Any]:
    return {
        "type": "metric",
        "properties": {
            "title": title,
            "region": REGION,
            "view": "timeSeries",
            "period": PERIOD,
            "metrics": metrics,
            **properties,
        },
    }


def widgets() -> list[dict[str, Any]]:
    predict, register = PREDICT_SERVICE, REGISTER_SERVICE
    functions = (predict, register, VALIDATE_SERVICE)  # the Lambda widgets show all three
    graphs = [
        graph(
            "Requests per minute",
            [
                metric(MetricName.REQUESTS, predict, stat="Sum", label="classify"),
                metric(MetricName.REQUESTS, register, stat="Sum", label="registry routes"),
                metric(MetricName.ERRORS, predict, stat="Sum", label="classify errors"),
                metric(MetricName.ERRORS, register, stat="Sum", label="registry errors"),
            ],
        ),
        graph(
            "Latency (ms)",
            [
                metric(MetricName.LATENCY, predict, stat="p50", label="classify p50"),
                metric(MetricName.LATENCY, predict, stat="p99", label="classify p99"),
                metric(MetricName.LATENCY, register, stat="p99", label="registry p99"),
            ],
        ),
        graph(
            "Model cache hit ratio (%)",
            [
                [{"expression": "100 * hits / (hits + misses)", "label": "hits", "id": "ratio"}],
                metric(MetricName.CACHE_HITS, predict, stat="Sum", id="hits", visible=False),
                metric(MetricName.CACHE_MISSES, predict, stat="Sum", id="misses", visible=False),
            ],
            yAxis={"left": {"min": 0, "max": 100}},
        ),
        graph("Errors by code", [[search(MetricName.ERRORS, "code")]], stacked=True),
        graph(
            "Classify requests per model",
            [[search(MetricName.REQUESTS, "model", predict)]],
            stacked=True,
        ),
        graph(
            "Instances classified per model",
            [[search(MetricName.INSTANCES, "model", predict)]],
            stacked=True,
        ),
        graph(
            "Model loads (cache misses)",
            [
                metric(MetricName.MODEL_LOAD_TIME, predict, stat="p50", label="load ms p50"),
                metric(MetricName.MODEL_LOAD_TIME, predict, stat="Maximum", label="load ms max"),
                metric(MetricName.CACHE_MISSES, predict, stat="Sum", label="loads", yAxis="right"),
                metric(
                    MetricName.INTEGRITY_FAILURES,
                    predict,
                    stat="Sum",
                    label="integrity failures",
                    yAxis="right",
                ),
            ],
        ),
        graph(
            "Registrations",
            [
                metric(MetricName.REGISTRATIONS, register, stat="Sum", label="new versions"),
                metric(
                    MetricName.VERSION_CONFLICT_RETRIES,
                    register,
                    stat="Sum",
                    label="version conflict retries (412)",
                ),
            ],
        ),
        graph(
            "Registration validation failures by reason",
            [[search(MetricName.VALIDATION_FAILURES, "code", register)]],
            stacked=True,
        ),
        graph(
            "Lambda duration (ms)",
            [
                lambda_metric("Duration", service, stat=stat, label=f"{service} {stat}")
                for service in functions
                for stat in ("p50", "p99")
            ],
        ),
        graph(
            "Lambda errors and throttles",
            [
                lambda_metric(name, service, stat="Sum", label=f"{service} {name.lower()}")
                for service in functions
                for name in ("Errors", "Throttles")
            ],
        ),
        graph(
            "Lambda concurrent executions",
            [
                lambda_metric("ConcurrentExecutions", service, stat="Maximum", label=service)
                for service in functions
            ],
        ),
        graph(
            "Cold starts",
            [
                metric(MetricName.COLD_STARTS, service, stat="Sum", label=service)
                for service in (predict, register)
            ],
        ),
        graph(
            "API Gateway (includes refused keys and throttling)",
            [
                ["AWS/ApiGateway", name, *API_DIMENSIONS, {"stat": "Sum", "label": name}]
                for name in ("Count", "4XXError", "5XXError")
            ],
        ),
    ]
    header = {
        "type": "text",
        "x": 0,
        "y": 0,
        "width": WIDTH * COLUMNS,
        "height": 2,
        "properties": {
            "markdown": (
                "## Model registry: ${AWS::StackName}\n"
                f"Metrics in namespace `{NAMESPACE}` (see docs/observability.md). "
                "Saved Logs Insights queries: `${AWS::StackName}/...`; "
                "an API response's `x-amzn-RequestId` header is its `correlation_id`."
            )
        },
    }
    for index, widget in enumerate(graphs):
        row, column = divmod(index, COLUMNS)
        widget.update(x=column * WIDTH, y=2 + row * HEIGHT, width=WIDTH, height=HEIGHT)
    return [header, *graphs]


def dashboard_body() -> str:
    """The body's JSON, one widget a line."""
    lines = ",\n".join("  " + json.dumps(widget) for widget in widgets())
    return '{"widgets": [\n' + lines + "\n]}\n"


def render_template(template: str) -> str:
    """The template with its DashboardBody replaced by the rendered one."""
    lines = template.splitlines(keepends=True)
    start = lines.index(BODY_LINE + "\n") + 1
    end = start
    while end < len(lines) and (lines[end].startswith(BODY_INDENT) or not lines[end].strip()):
        end += 1
    while end > start and not lines[end - 1].strip():  # keep the blank line after the block
        end -= 1
    body = [BODY_INDENT + line + "\n" for line in dashboard_body().splitlines()]
    return "".join(lines[:start] + body + lines[end:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if template.yaml is stale")
    args = parser.parse_args()
    current = TEMPLATE_PATH.read_text()
    rendered = render_template(current)
    if args.check:
        if rendered != current:
            print("template.yaml's dashboard is stale: run make dashboard", file=sys.stderr)
            return 1
        return 0
    TEMPLATE_PATH.write_text(rendered)
    print(f"wrote the dashboard into {TEMPLATE_PATH.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
