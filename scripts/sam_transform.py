"""Print the CloudFormation that AWS SAM's translator makes of template.yaml, offline.

Runs in the SAM CLI's venv (.venv-sam, where samtranslator lives): the tests call
it as `$SAM_PYTHON scripts/sam_transform.py [Name=value ...]` and assert on the JSON
it prints. Parameters given are passed to the translator as CloudFormation passes a
deployment's values (a CommaDelimitedList as a list); the others keep their defaults.
Managed policies are looked up in a fixed map instead of IAM, which this needs
no account for.
"""

import json
import os
import sys
from pathlib import Path

from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
# The AWS managed policies SAM attaches to function roles on its own.
MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for name, path in {
        "AWSLambdaBasicExecutionRole": "service-role/",
        "AWSXrayWriteOnlyAccess": "",
        "AWSXRayDaemonWriteAccess": "",
    }.items()
}


class FixedPolicyLoader(ManagedPolicyLoader):
    def __init__(self) -> None:
        pass

    def load(self) -> dict[str, str]:
        return MANAGED_POLICIES


def main() -> None:
    # The translator asks a boto3 session for the region; nothing here calls AWS.
    os.environ.update(AWS_DEFAULT_REGION="eu-west-1", AWS_EC2_METADATA_DISABLED="true")
    template = yaml_parse(TEMPLATE.read_text())
    # As `sam deploy` does: local code folders and definitions become uploaded artifacts.
    for name, resource in template["Resources"].items():
        for uri in ("CodeUri", "ContentUri", "DefinitionUri"):
            if uri in resource.get("Properties", {}):
                resource["Properties"][uri] = f"s3://artifacts-bucket/{name}.zip"
    parameters: dict[str, object] = {"AWS::Region": "eu-west-1", "AWS::Partition": "aws"}
    for assignment in sys.argv[1:]:
        name, _, value = assignment.partition("=")
        kind = template["Parameters"][name]["Type"]
        parameters[name] = value.split(",") if kind == "CommaDelimitedList" else value
    cloudformation = transform(template, parameters, FixedPolicyLoader())
    print(json.dumps(cloudformation, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
