"""What a batch job is, as the registry stores it: the job, its plan, what each part did.

A job scores every row of an input (one CSV or JSON-lines object, or every object under a
prefix) with one version, resolved when the job was submitted, and writes the answers to
an output prefix: one file per input part, in input order, each row carrying the input's id
column or its position (its row number in the input, counted from 0, header excluded).

The registry keeps a job's records under batch-jobs/<id>/:
    job.json                       the job as submitted (write-once)
    plan.json                      its parts, a JSON array: what the Distributed Map reads
    parts/<part>-<read>-<scored>-<failed>.json   what one part did (counts in the key, so
                                   progress is one listing, however many parts there are)
    summary.json                   how the job ended
and the user's output prefix holds part-<part>.csv|jsonl and errors/part-<part>.jsonl.
"""

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from registry.errors import InvalidNameError

JOBS_PREFIX = "batch-jobs/"
JOB_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
# Rows one part holds, by default: what one child of the Distributed Map (one Lambda
# invocation) scores, and what bounds a local worker's memory. docs/benchmarks.md: why.
DEFAULT_ROWS_PER_PART = 100_000
MAX_ROWS_PER_PART = 1_000_000
# The share of rows that may fail before the job ends FAILED, by default.
DEFAULT_TOLERATED_FAILURE_PERCENT = 1.0
# The errors a status shows, and a part keeps, of those it wrote to its errors file.
MAX_ERRORS_SHOWN = 10


class BatchFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


class JobStatus(StrEnum):
    SUBMITTED = "SUBMITTED"  # recorded; its run has not planned its parts yet
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class BatchJob(BaseModel):
    """A job as submitted: the version is the one its alias (or "latest") named then."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: Annotated[str, Field(pattern=JOB_ID_PATTERN)]
    model: str
    version: int
    alias: str | None = None
    input: str  # s3://bucket/key-or-prefix, or an absolute local path (local server only)
    output: str  # s3://bucket/prefix/, or a local folder
    format: BatchFormat
    probabilities: bool = False
    id_column: str | None = None
    rows_per_part: int = Field(default=DEFAULT_ROWS_PER_PART, ge=1, le=MAX_ROWS_PER_PART)
    tolerated_failure_percent: float = Field(
        default=DEFAULT_TOLERATED_FAILURE_PERCENT, ge=0, le=100
    )
    submitted_at: datetime
    submitted_by: str | None = None

    def same_work(self, other: "BatchJob") -> bool:
        """Whether two submissions ask for the same output: a re-run, not another job."""
        ignored = {"submitted_at", "submitted_by"}
        return self.model_dump(exclude=ignored) == other.model_dump(exclude=ignored)


class InputPart(BaseModel):
    """Rows [first_row, first_row + rows) of the input: bytes [start, end) of one object,
    whose header (a CSV's first line) ends at header_end."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    part: int = Field(ge=0)
    key: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    header_end: int = Field(default=0, ge=0)
    first_row: int = Field(ge=0)
    rows: int = Field(ge=0)


class RowError(BaseModel):
    """A row that was not scored: its position in the input, and why, in the caller's words."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    position: int
    reason: str


class PartResult(BaseModel):
    """What scoring one part did."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    part: int
    rows_read: int
    rows_scored: int
    rows_failed: int
    output: str
    errors: str
    first_errors: list[RowError] = Field(default_factory=list)


class JobSummary(BaseModel):
    """How a job ended (or, read from its parts, how far it is)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: JobStatus
    parts: int = 0
    parts_done: int = 0
    rows_read: int = 0
    rows_scored: int = 0
    rows_failed: int = 0
    outputs: list[str] = Field(default_factory=list)
    first_errors: list[RowError] = Field(default_factory=list)
    reason: str | None = None
    ended_at: datetime | None = None


def validate_job_id(job_id: str) -> None:
    if not re.match(JOB_ID_PATTERN, job_id):
        raise InvalidNameError(
            f"job id {job_id[:80]!r} is not valid: use 1 to 63 lowercase letters, digits and "
            "dashes, starting with a letter or digit"
        )


def job_key(job_id: str) -> str:
    return f"{JOBS_PREFIX}{job_id}/job.json"


def plan_key(job_id: str) -> str:
    return f"{JOBS_PREFIX}{job_id}/plan.json"


def summary_key(job_id: str) -> str:
    return f"{JOBS_PREFIX}{job_id}/summary.json"


def part_results_prefix(job_id: str) -> str:
    return f"{JOBS_PREFIX}{job_id}/parts/"


def part_result_key(job_id: str, result: PartResult) -> str:
    counts = f"{result.rows_read}-{result.rows_scored}-{result.rows_failed}"
    return f"{part_results_prefix(job_id)}{result.part:06d}-{counts}.json"


def counts_in_key(key: str) -> tuple[int, int, int, int] | None:
    """(part, rows read, scored, failed) from a part result's key; None for another key."""
    match = re.search(r"/(\d+)-(\d+)-(\d+)-(\d+)\.json$", key)
    if match is None:
        return None
    part, read, scored, failed = (int(group) for group in match.groups())
    return part, read, scored, failed


def output_name(part: int, format: BatchFormat) -> str:
    return f"part-{part:06d}.{format.value}"


def errors_name(part: int) -> str:
    return f"errors/part-{part:06d}.jsonl"


def plan_json(parts: list[InputPart]) -> bytes:
    return ("[" + ",".join(part.model_dump_json() for part in parts) + "]").encode()


def parts_of(plan: Any) -> list[InputPart]:
    return [InputPart.model_validate(part) for part in plan]
