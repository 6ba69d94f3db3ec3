"""Reading SAM's transform of template.yaml: resources by type, a role's statements."""

from typing import Any

# The principals the stack is transformed with when WriterPrincipals is set.
WRITERS = ["arn:aws:iam::123456789012:role/ci-*", "arn:aws:iam::123456789012:user/alice"]


def resources_of(cloudformation: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        name: resource["Properties"]
        for name, resource in cloudformation["Resources"].items()
        if resource["Type"] == kind
    }


def statements_of(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in role.get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def actions_of(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)
