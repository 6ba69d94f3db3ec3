"""The CloudFormation AWS SAM makes of template.yaml: auth, least privilege, bucket, logs.

The template goes through SAM's own translator (samtranslator, in the SAM CLI's
venv), offline, and these tests read what it produced.
"""

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

from registry.http.gateway import (
    Route,
    execute_api_arn,
    iam_allows,
    load_template,
    routes_from_template,
)
from tests.support.cloudformation import WRITERS, actions_of, resources_of, statements_of
from tests.support.policies import readme_policy

REPO_ROOT = Path(__file__).resolve().parents[2]
WRITE_OR_DELETE = ("Put", "Delete", "Create", "Restore", "Replicate", "Abort", "*")


def test_predict_routes_need_an_api_key_and_every_models_route_needs_iam(
    cloudformation: dict[str, Any],
) -> None:
    (api,) = resources_of(cloudformation, "AWS::ApiGateway::RestApi").values()
    operations = {
        (method, path): operation
        for path, item in api["Body"]["paths"].items()
        for method, operation in item.items()
    }
    assert ("post", "/classify") in operations and len(operations) == 26
    for (method, path), operation in operations.items():
        if path in ("/classify", "/predict", "/invocations", "/ping"):
            assert operation["security"] == [{"api_key": []}]
        else:
            assert path.startswith(("/models", "/runtime", "/batch-jobs")), path
            assert operation["security"] == [{"AWS_IAM": []}], (method, path)
            # API Gateway invokes the function itself; callers need only execute-api:Invoke.
            assert "credentials" not in operation["x-amazon-apigateway-integration"]
    assert api["Body"]["securityDefinitions"]["AWS_IAM"]["x-amazon-apigateway-authtype"] == (
        "awsSigv4"
    )


def test_the_stack_creates_an_api_key_and_a_throttled_usage_plan(
    cloudformation: dict[str, Any],
) -> None:
    (plan,) = resources_of(cloudformation, "AWS::ApiGateway::UsagePlan").values()
    assert set(plan["Throttle"]) == {"RateLimit", "BurstLimit"}
    assert set(plan["Quota"]) == {"Limit", "Period"}
    assert resources_of(cloudformation, "AWS::ApiGateway::ApiKey")
    assert resources_of(cloudformation, "AWS::ApiGateway::UsagePlanKey")
    assert set(cloudformation["Outputs"]) >= {"ApiUrl", "ApiKeyId", "BucketName"}


def test_the_predict_role_may_only_read_the_registry(cloudformation: dict[str, Any]) -> None:
    role = resources_of(cloudformation, "AWS::IAM::Role")["PredictFunctionRole"]
    statements = statements_of(role)
    actions = {action for statement in statements for action in actions_of(statement)}

    assert actions == {"s3:GetObject", "s3:ListBucket", "lambda:InvokeFunction"}
    assert not any(word in action for action in actions for word in WRITE_OR_DELETE)
    for statement in statements:
        resource = json.dumps(statement["Resource"])
        if "s3:GetObject" in actions_of(statement):
            assert "/registry/*" in resource
        elif "lambda:InvokeFunction" in actions_of(statement):
            # the older runtime lines' predict functions, and nothing else
            assert statement["Resource"]["Fn::Sub"].endswith(
                ":function:${AWS::StackName}-predict-*"
            )
        else:
            assert statement["Condition"] == {"StringLike": {"s3:prefix": ["registry/*"]}}


def test_the_register_role_writes_only_under_the_registry_prefix(
    cloudformation: dict[str, Any],
) -> None:
    role = resources_of(cloudformation, "AWS::IAM::Role")["RegisterFunctionRole"]
    statements = statements_of(role)
    actions = {action for statement in statements for action in actions_of(statement)}

    assert actions == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        "lambda:InvokeFunction",
        "states:StartExecution",
        "states:DescribeExecution",
    }
    for statement in statements:
        if "states:StartExecution" in actions_of(statement):
            assert statement["Resource"] == {"Ref": "BatchStateMachine"}
        if "states:DescribeExecution" in actions_of(statement):
            assert statement["Resource"]["Fn::Sub"].endswith(":execution:${AWS::StackName}-batch:*")
        if {"s3:PutObject", "s3:DeleteObject"} & set(actions_of(statement)):
            assert "/registry/*" in json.dumps(statement["Resource"])
        if "lambda:InvokeFunction" in actions_of(statement):
            validator, lines = statement["Resource"]
            assert validator == {"Fn::GetAtt": ["ValidateFunction", "Arn"]}
            assert lines["Fn::Sub"].endswith(":function:${AWS::StackName}-validate-*")


def test_the_batch_function_reads_the_input_and_registry_and_writes_only_records_and_output(
    cloudformation: dict[str, Any],
) -> None:
    role = resources_of(cloudformation, "AWS::IAM::Role")["BatchFunctionRole"]
    granted = {
        (action, json.dumps(statement["Resource"]))
        for statement in statements_of(role)
        for action in actions_of(statement)
        if not action.startswith("xray:")
    }
    writes = sorted(resource for action, resource in granted if action == "s3:PutObject")
    reads = sorted(resource for action, resource in granted if action == "s3:GetObject")
    assert {action for action, _ in granted} == {"s3:GetObject", "s3:PutObject", "s3:ListBucket"}
    assert len(writes) == 2
    assert "/registry/batch-jobs/*" in writes[0] + writes[1]
    assert "${BatchOutputPrefix}*" in writes[0] + writes[1]
    assert len(reads) == 2
    assert "/registry/*" in reads[0] + reads[1] and "${BatchInputPrefix}*" in reads[0] + reads[1]


def test_the_state_machine_invokes_only_its_function_and_touches_only_job_records(
    cloudformation: dict[str, Any],
) -> None:
    (machine,) = resources_of(cloudformation, "AWS::StepFunctions::StateMachine").values()
    substitutions = machine["DefinitionSubstitutions"]
    assert substitutions["BatchFunctionArn"] == {"Fn::GetAtt": ["BatchFunction", "Arn"]}
    assert substitutions["BatchChildExecutionType"] == "EXPRESS"
    assert machine["StateMachineType"] == "STANDARD"
    role = resources_of(cloudformation, "AWS::IAM::Role")["BatchStateMachineRole"]
    for statement in statements_of(role):
        actions = set(actions_of(statement))
        resource = json.dumps(statement["Resource"])
        if "lambda:InvokeFunction" in actions:
            assert statement["Resource"] == {"Fn::GetAtt": ["BatchFunction", "Arn"]}
        elif actions & {"s3:GetObject", "s3:PutObject"}:
            assert resource.count("/registry/batch-jobs/*") == 1, resource
        elif actions & {"states:StartExecution", "states:DescribeExecution"}:
            assert "${AWS::StackName}-batch" in resource
        else:
            assert actions <= {
                "logs:CreateLogDelivery",
                "logs:GetLogDelivery",
                "logs:UpdateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries",
                "logs:PutResourcePolicy",
                "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups",
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
            }, actions


def test_the_validator_can_write_nothing_but_its_own_logs(cloudformation: dict[str, Any]) -> None:
    role = resources_of(cloudformation, "AWS::IAM::Role")["ValidateFunctionRole"]
    assert "ManagedPolicyArns" not in role  # not SAM's logs:* on every group, nor X-Ray
    (statement,) = statements_of(role)
    assert set(actions_of(statement)) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    own, lines = (resource["Fn::Sub"] for resource in statement["Resource"])
    assert own.endswith(":log-group:/aws/lambda/${AWS::StackName}-validate:*")
    assert lines.endswith(":log-group:/aws/lambda/${AWS::StackName}-validate-*:*")
    functions = resources_of(cloudformation, "AWS::Lambda::Function")
    validators = sorted(name for name in functions if name.endswith("ValidateFunction"))
    assert validators == ["Line17ValidateFunction", "Line18ValidateFunction", "ValidateFunction"]
    for name in validators:  # every line's validator has this role, and no more
        function = functions[name]
        assert function["Role"] == {"Fn::GetAtt": ["ValidateFunctionRole", "Arn"]}
        variables = function["Environment"]["Variables"]
        assert "REGISTRY_URI" not in variables and not any("SECRET" in name for name in variables)
    # No route reaches them: only register invokes them.
    permissions = resources_of(cloudformation, "AWS::Lambda::Permission").values()
    assert all("ValidateFunction" not in json.dumps(p["FunctionName"]) for p in permissions)
    assert all("Line" not in json.dumps(p["FunctionName"]) for p in permissions)


def test_registrations_cannot_use_up_the_concurrency_predict_needs(
    cloudformation: dict[str, Any],
) -> None:
    functions = resources_of(cloudformation, "AWS::Lambda::Function")
    for name in ("RegisterFunction", "ValidateFunction"):
        assert functions[name]["ReservedConcurrentExecutions"] == {
            "Ref": "RegisterReservedConcurrency"
        }
    assert "ReservedConcurrentExecutions" not in functions["PredictFunction"]


def test_the_stage_writes_access_logs_with_api_gateways_own_refusals(
    cloudformation: dict[str, Any],
) -> None:
    (stage,) = resources_of(cloudformation, "AWS::ApiGateway::Stage").values()
    setting = stage["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    record = json.loads(setting["Format"])
    assert record["status"] == "$context.status"
    assert record["errorType"] == "$context.error.responseType"  # 403, 429, bad signatures
    assert record["caller"] == "$context.identity.userArn"
    group = resources_of(cloudformation, "AWS::Logs::LogGroup")["ApiAccessLogGroup"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    # API Gateway logs through one role per account and region: set only when asked.
    assert cloudformation["Resources"]["ApiGatewayAccount"]["Condition"] == "SetLoggingRole"


def test_the_5xx_alarm_notifies_the_optional_topic(cloudformation: dict[str, Any]) -> None:
    (alarm,) = resources_of(cloudformation, "AWS::CloudWatch::Alarm").values()
    expected = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert alarm["AlarmActions"] == expected
    assert alarm["OKActions"] == expected


def test_no_role_gets_every_s3_action(cloudformation: dict[str, Any]) -> None:
    for role in resources_of(cloudformation, "AWS::IAM::Role").values():
        for statement in statements_of(role):
            assert statement["Effect"] == "Allow"
            assert not any(action in ("s3:*", "*") for action in actions_of(statement))


def test_the_bucket_is_versioned_encrypted_private_and_tls_only(
    cloudformation: dict[str, Any],
) -> None:
    bucket = resources_of(cloudformation, "AWS::S3::Bucket")["RegistryBucket"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"], True
    )
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireUnregisteredUploads"]["Prefix"] == "registry/uploads/"
    assert rules["ExpireUnregisteredUploads"]["ExpirationInDays"] == 1
    assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == {
        "Ref": "NoncurrentVersionExpirationDays"
    }
    (policy,) = resources_of(cloudformation, "AWS::S3::BucketPolicy").values()
    deny = policy["PolicyDocument"]["Statement"][0]  # the others: tests/unit/test_bucket_policy.py
    assert (deny["Effect"], deny["Condition"]) == (
        "Deny",
        {"Bool": {"aws:SecureTransport": "false"}},
    )


def test_an_existing_bucket_can_be_used_instead(cloudformation: dict[str, Any]) -> None:
    assert cloudformation["Resources"]["RegistryBucket"]["Condition"] == "CreateBucket"
    assert cloudformation["Conditions"]["CreateBucket"] == {
        "Fn::Equals": [{"Ref": "ExistingBucketName"}, ""]
    }


def test_each_function_logs_to_a_group_with_retention_and_is_traced(
    cloudformation: dict[str, Any],
) -> None:
    groups = resources_of(cloudformation, "AWS::Logs::LogGroup")
    functions = resources_of(cloudformation, "AWS::Lambda::Function")
    lines = [f"Line{minor}{role}" for minor in ("18", "17") for role in ("Validate", "Predict")]
    assert set(functions) == {
        "PredictFunction",
        "RegisterFunction",
        "ValidateFunction",
        "BatchFunction",
        *(f"{line}Function" for line in lines),
    }
    for name, function in functions.items():
        group = groups[f"{name}LogGroup"]
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        # The validators are named, so that their role can name their log groups; the
        # lines' predict functions, so that the front's role can name them.
        named = {
            "ValidateFunction": "validate",
            "BatchFunction": "batch",
            **{
                f"Line{minor}{role}Function": f"{role.lower()}-{minor[0]}-{minor[1:]}"
                for minor in ("18", "17")
                for role in ("Validate", "Predict")
            },
        }.get(name)
        if named is not None:
            assert function["FunctionName"] == {"Fn::Sub": f"${{AWS::StackName}}-{named}"}
            assert group["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}-{named}"}
        if named is not None and named.startswith("validate"):
            assert "TracingConfig" not in function  # no X-Ray permission either
            continue
        if named is None:
            assert group["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{name}}}"}
        assert function["TracingConfig"] == {"Mode": "Active"}
        variables = function["Environment"]["Variables"]
        assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= set(variables)
        assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
        assert function["Runtime"] == "python3.12"


def test_an_alarm_watches_the_apis_5xx_rate(cloudformation: dict[str, Any]) -> None:
    (alarm,) = resources_of(cloudformation, "AWS::CloudWatch::Alarm").values()
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "AWS/ApiGateway",
        "5XXError",
        "Average",
    )


def test_snapstart_is_a_parameter_on_the_predict_functions_published_alias(
    cloudformation: dict[str, Any],
) -> None:
    predict = resources_of(cloudformation, "AWS::Lambda::Function")["PredictFunction"]
    assert predict["SnapStart"] == {
        "ApplyOn": {"Fn::If": ["UseSnapStart", "PublishedVersions", "None"]}
    }
    assert "PredictFunctionAliaslive" in cloudformation["Resources"]
    assert predict["Environment"]["Variables"]["PRELOAD_DEFAULT_MODEL"] == {
        "Ref": "PreloadDefaultModel"
    }


def test_only_the_api_key_routes_are_opened_and_writers_can_be_named(
    cloudformation_with_writers: dict[str, Any],
) -> None:
    (api,) = resources_of(cloudformation_with_writers, "AWS::ApiGateway::RestApi").values()
    allow, conditional_deny = api["Body"]["x-amazon-apigateway-policy"]["Statement"]
    operations = {
        (method.upper(), path): operation
        for path, item in api["Body"]["paths"].items()
        for method, operation in item.items()
    }
    key_routes = {route for route, op in operations.items() if op["security"] == [{"api_key": []}]}
    # IAM routes are left to callers' IAM policies: no other account is let in.
    assert (allow["Effect"], allow["Principal"]) == ("Allow", "*")
    assert allow["Resource"] == [f"execute-api:/*/{m}{p}" for m, p in sorted(key_routes)]

    condition, deny, no_value = conditional_deny["Fn::If"]
    assert (condition, no_value) == ("HasWriterPrincipals", {"Ref": "AWS::NoValue"})
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"StringNotLike": {"aws:PrincipalArn": WRITERS}}
    for (method, path), _ in operations.items():
        resource = f"execute-api:/prod/{method}{re.sub(r'{[^}]+}', 'x', path)}"
        writes = method != "GET" and path.startswith("/models")
        matched = any(fnmatch.fnmatchcase(resource, pattern) for pattern in deny["Resource"])
        assert matched == writes, (method, path)


def readme_policies() -> dict[str, dict[str, Any]]:
    """The README's JSON policy documents, by the Sid of their first statement."""
    blocks = re.findall(r"```json\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.DOTALL)
    documents = [json.loads(block) for block in blocks if '"Statement"' in block]
    return {document["Statement"][0]["Sid"]: document for document in documents}


def test_the_readmes_reader_and_registrar_policies_grant_what_they_say() -> None:
    policies = readme_policies()
    api = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod"

    def allows(sid: str, method: str, path: str) -> bool:
        (statement,) = policies[sid]["Statement"]
        assert (statement["Effect"], statement["Action"]) == ("Allow", "execute-api:Invoke")
        policy = json.loads(json.dumps(policies[sid]).replace("<ApiExecutionArn>", api))
        path = re.sub(r"{[^}]+}", "x", path)
        return iam_allows(policy, "execute-api:Invoke", execute_api_arn(method, path, api))

    routes = [route for route in routes_from_template(load_template()) if route.iam_auth]
    assert any(route.method != "GET" for route in routes)
    for route in routes:
        assert allows("ReadTheModelRegistry", route.method, route.path) == (route.method == "GET")
        assert allows("WriteTheModelRegistry", route.method, route.path), route


def test_the_readmes_statements_for_an_existing_bucket_are_the_stacks_own(
    cloudformation: dict[str, Any],
) -> None:
    (policy,) = resources_of(cloudformation, "AWS::S3::BucketPolicy").values()
    rendered = json.dumps(policy["PolicyDocument"]["Statement"])
    rendered = rendered.replace('{"Fn::GetAtt": ["RegistryBucket", "Arn"]}', '"<Arn>"')
    rendered = rendered.replace(
        '{"Fn::GetAtt": ["RegisterFunctionRole", "Arn"]}', '"<RegisterFunctionRoleArn>"'
    )
    rendered = re.sub(r'\{"Fn::Sub": "\$\{RegistryBucket\.Arn\}([^"]*)"\}', r'"<Arn>\1"', rendered)
    stack_statements = json.loads(rendered.replace("<Arn>", "arn:aws:s3:::<BucketName>"))
    assert readme_policies()["DenyInsecureTransport"]["Statement"] == stack_statements


def test_api_gateways_own_refusals_keep_the_error_shape_and_a_too_large_body_says_where_to_go(
    cloudformation: dict[str, Any],
) -> None:
    (api,) = resources_of(cloudformation, "AWS::ApiGateway::RestApi").values()
    responses = api["Body"]["x-amazon-apigateway-gateway-responses"]
    too_large = json.loads(responses["REQUEST_TOO_LARGE"]["responseTemplates"]["application/json"])

    assert set(too_large) == {"code", "message"}
    assert "POST /models/{name}/uploads" in too_large["message"]
    assert "model-registry classify NAME --input" in too_large["message"]
    assert {"DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)


def test_the_team_registrar_policy_allows_its_own_names_only() -> None:
    """Every route of the template, for a model of the team (fraud-churn) and of another team
    (payments-churn): the team's registrar may read both, and write its own only."""
    policy = readme_policy("team-registrar-policy")
    routes = [route for route in routes_from_template(load_template()) if route.iam_auth]
    assert {route.path for route in routes} >= {"/models", "/models/{name}/versions"}

    def allowed(route: Route, name: str) -> bool:
        path = route.path.replace("{name}", name).replace("{version}", "3")
        path = path.replace("{alias}", "production")
        return iam_allows(policy, "execute-api:Invoke", execute_api_arn(route.method, path))

    for route in routes:
        reads = route.method == "GET"
        names_a_model = "{name}" in route.path
        assert allowed(route, "fraud-churn") is (reads or names_a_model), route
        assert allowed(route, "payments-churn") is reads, route
    # The blog's route names the model in its body: the team's registrar may not use it.
    assert not iam_allows(policy, "execute-api:Invoke", execute_api_arn("POST", "/models"))
    # and a name that merely contains the team's prefix is another team's
    assert not iam_allows(
        policy, "execute-api:Invoke", execute_api_arn("POST", "/models/payments-fraud-x/versions")
    )
