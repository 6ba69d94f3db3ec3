"""The validator: loads and describes an artifact for register, and can write nothing.

Invoked by the register function only (no API route). Its role has no S3 permission;
it gets the bytes in the invocation or through a presigned GET of one object, loads
them in a child process (registry/inspecting/worker.py), and answers JSON.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from registry.config import Settings
from registry.inspecting.worker import handle_validation, prepare_validator

# Before any caller byte arrives: no credential stays in this process, and the sandbox's
# zygote has imported everything a child may use. A sandbox an artifact tainted ends this
# execution environment (the process exits), so Lambda starts the next one afresh.
prepare_validator(exit_when_tainted=True)
PICKLE_POLICY = Settings.from_environ().pickle_artifacts


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_validation(event, PICKLE_POLICY)
