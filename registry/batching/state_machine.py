"""The deployed engine: a Step Functions state machine (statemachine/batch.asl.json, the
template's BatchStateMachine).

Each run of a job is one execution, named <job id>-<run>, whose input is the job's id: its
steps call the batch function (functions/batch/app.py) to plan, to score each part (a
Distributed Map over the plan) and to summarize.
"""

import json
from typing import Any

from registry.batching.jobs import BatchJob
from registry.batching.running import RunState
from registry.errors import BatchJobsUnavailableError

ENDED_WITHOUT_SUCCESS = {"FAILED", "TIMED_OUT", "ABORTED"}


def execution_name(job_id: str, run: int) -> str:
    return f"{job_id}-{run}"


class StepFunctionsRunner:
    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self.client = client
        self.state_machine_arn = state_machine_arn

    def start(self, job: BatchJob, run: int) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.start_execution(
                stateMachineArn=self.state_machine_arn,
                name=execution_name(job.job_id, run),
                input=json.dumps({"job_id": job.job_id}),
            )
        except (BotoCoreError, ClientError) as exc:
            raise BatchJobsUnavailableError(
                f"the batch state machine did not start job {job.job_id!r} ({exc}): submit it "
                "again with the same job_id"
            ) from exc

    def execution_arn(self, job: BatchJob, run: int) -> str:
        machine = self.state_machine_arn.replace(":stateMachine:", ":execution:", 1)
        return f"{machine}:{execution_name(job.job_id, run)}"

    def state(self, job: BatchJob, run: int) -> RunState | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            execution = self.client.describe_execution(executionArn=self.execution_arn(job, run))
        except (BotoCoreError, ClientError):
            return None  # not started yet, or not visible: the job's own records say
        status = execution["status"]
        if status in ENDED_WITHOUT_SUCCESS:
            cause = execution.get("cause") or execution.get("error") or status.lower()
            return RunState(running=False, error=f"the run {status.lower()}: {cause}"[:1000])
        return RunState(running=status == "RUNNING")
