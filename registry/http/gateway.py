"""What API Gateway and Lambda hand a function, built locally from template.yaml.

The routes of template.yaml's Api events, the REST proxy event API Gateway builds for a
request, the Lambda context Powertools reads, and IAM's answer for a route under an
identity policy: scripts/local_api.py serves the handlers with them, and the tests invoke
the handlers with them. Read from a clone (template.yaml and
functions/ sit next to this package); PyYAML is the `local` extra.
"""

import base64
import importlib.util
import re
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


class _TemplateLoader(yaml.SafeLoader):  # type: ignore[misc]
    """Reads CloudFormation YAML, keeping the values under intrinsic tags such as !Ref."""


_TemplateLoader.add_multi_constructor(
    "!",
    lambda loader, suffix, node: (
        loader.construct_scalar(node)
        if isinstance(node, yaml.ScalarNode)
        else loader.construct_sequence(node)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node)
    ),
)


def load_template(path: Path = REPO_ROOT / "template.yaml") -> dict[str, Any]:
    with path.open() as template_file:
        return dict(yaml.load(template_file, Loader=_TemplateLoader))


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    code_dir: Path
    api_key_required: bool
    iam_auth: bool
    pattern: re.Pattern[str] = field(compare=False)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None


def _path_pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", path)
    regex = "".join(
        f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part) for part in parts
    )
    return re.compile(regex)


def routes_from_template(template: dict[str, Any]) -> list[Route]:
    """Every Api event of every function in the template."""
    routes = []
    for function, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        for event in properties.get("Events", {}).values():
            if event.get("Type") != "Api":
                continue
            event_properties = event["Properties"]
            auth = event_properties.get("Auth", {})
            routes.append(
                Route(
                    method=event_properties["Method"].upper(),
                    path=event_properties["Path"],
                    function=function,
                    code_dir=REPO_ROOT / properties["CodeUri"],
                    api_key_required=bool(auth.get("ApiKeyRequired", False)),
                    iam_auth=auth.get("Authorizer") == "AWS_IAM",
                    pattern=_path_pattern(event_properties["Path"]),
                )
            )
    return routes


# What stands for a stack's ApiExecutionArn output locally (arn:aws:execute-api:<region>:
# <account>:<api id>/<stage>): a policy written for the stack names it as <ApiExecutionArn>.
LOCAL_API_EXECUTION_ARN = "arn:aws:execute-api:local:000000000000:local/prod"


def execute_api_arn(method: str, path: str, api: str = LOCAL_API_EXECUTION_ARN) -> str:
    """The resource IAM authorises a call of this route against: <api>/<METHOD>/<path>."""
    return f"{api}/{method}{path}"


def iam_allows(policy: dict[str, Any], action: str, resource: str) -> bool:
    """IAM's answer for an identity policy (Action and Resource, with * and ? wildcards):
    an explicit Deny wins, else any Allow, else no."""
    allowed = False
    for statement in _listed(policy.get("Statement", [])):
        if not (
            _matches(statement.get("Action", []), action)
            and _matches(statement.get("Resource", []), resource)
        ):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(patterns: Any, value: str) -> bool:
    """IAM's wildcards: * any run of characters (slashes too), ? one character."""
    for pattern in _listed(patterns):
        regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
        if re.fullmatch(regex, value):
            return True
    return False


def load_function_module(code_dir: Path) -> Any:
    """Import a function's app.py under a name of its own (both are called 'app')."""
    module_name = f"local_api_{code_dir.name}_app"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, code_dir / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class LocalLambdaContext:
    """The attributes of a Lambda context object that Powertools reads."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    log_group_name: str = "local"
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self.invoked_function_arn = (
            f"arn:aws:lambda:local:000000000000:function:{self.function_name}"
        )

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def build_event(
    route: Route,
    method: str,
    path: str,
    path_parameters: dict[str, str],
    query: dict[str, list[str]],
    headers: dict[str, str],
    body: bytes,
    stage: str = "local",
) -> dict[str, Any]:
    """An API Gateway REST proxy event, as Lambda would receive it."""
    try:
        text_body, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text_body, is_base64 = base64.b64encode(body).decode("ascii"), True
    request_id = str(uuid.uuid4())
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {key: [value] for key, value in headers.items()} or None,
        "queryStringParameters": {key: values[-1] for key, values in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "requestId": request_id,
            "resourcePath": route.path,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "identity": {"sourceIp": "127.0.0.1", "userArn": None, "caller": None},
        },
        "body": text_body if body else None,
        "isBase64Encoded": is_base64,
    }
