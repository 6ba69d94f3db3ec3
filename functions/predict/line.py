"""An older runtime line's predict function: predicts a version the front resolved.

The front predict function (app.py, on the newest line) resolves a request's model version,
and invokes this function with the resolved name and version, what the version's serving copy
was, as the front read the model's state, and the rows (registry/serving/routing.py). This
function resolves nothing again: it loads the version from its own cache and answers the
predictions, or the caller's error as {"error": {"code", "message"}}. No API route reaches it;
only the front may invoke it.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from registry.serving.routing import answer_routed, line_predictor

PREDICTOR = line_predictor()


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return answer_routed(PREDICTOR, event)
