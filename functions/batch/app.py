"""The batch function: the steps of a batch job's run, invoked by the batch state machine
(statemachine/batch.asl.json).

{"action": "plan", "job_id"}: split the input into parts (batch-jobs/<id>/plan.json);
{"action": "score", "job_id", "part": {...}}: score one part, write its output and errors;
{"action": "summarize", "job_id", "parts"}: sum the parts up and record how the job ended.
No API route reaches it. It runs the predictor's own code on one version (registry/batching).
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from registry.batching.jobs import InputPart
from registry.http import service
from registry.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    jobs = service.batch_jobs()
    action, job_id = event["action"], event["job_id"]
    logger.append_keys(job_id=job_id, action=action)
    if action == "plan":
        return jobs.plan(job_id)
    if action == "score":
        result = jobs.score(job_id, InputPart.model_validate(event["part"]))
        logger.info("part scored", extra=result.model_dump(exclude={"first_errors"}))
        # Small: the Distributed Map keeps each child's answer in its results.
        return result.model_dump(include={"part", "rows_read", "rows_scored", "rows_failed"})
    if action == "summarize":
        summary = jobs.summarize(job_id, event.get("parts"))
        return summary.model_dump(mode="json", exclude={"outputs"})
    raise ValueError(f"unknown action {action!r}")
