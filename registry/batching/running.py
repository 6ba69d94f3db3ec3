"""A batch job's life: submitted, planned, scored part by part, summed up.

Submitting resolves the version once (an alias that moves mid-job changes nothing), checks
the input's header against the model, records the job, and asks a JobRunner to run it:
the state machine (deployed: registry/batching/state_machine.py) or a pool on this machine
(registry/batching/local_job.py). Both run the same three steps, each a method here: plan,
score a part, summarize.
"""

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from registry.batching.jobs import (
    JOBS_PREFIX,
    MAX_ERRORS_SHOWN,
    BatchFormat,
    BatchJob,
    InputPart,
    JobStatus,
    JobSummary,
    PartResult,
    RowError,
    counts_in_key,
    job_key,
    output_name,
    part_result_key,
    part_results_prefix,
    plan_json,
    plan_key,
    summary_key,
    validate_job_id,
)
from registry.batching.planning import Location, input_keys, open_location, plan_parts
from registry.batching.scoring import check_input_columns, score_part
from registry.config import PicklePolicy
from registry.errors import (
    BatchInputError,
    BatchJobConflictError,
    BatchJobNotFoundError,
    BatchJobsUnavailableError,
    ObjectNotFoundError,
    ProbabilitiesUnavailableError,
    StoreUnavailableError,
)
from registry.lines import runtime_minor
from registry.manifest import ModelManifest, ServingFormat
from registry.registry import ModelRegistry
from registry.store import S3Store


@dataclass(frozen=True)
class RunState:
    """What the engine running a job says of its latest run."""

    running: bool
    error: str | None = None  # why it ended without a summary (a crash, a timeout)


class JobRunner(Protocol):
    def start(self, job: BatchJob, run: int) -> None:
        """Run the job's steps (plan, score every part, summarize) as run number `run`."""
        ...

    def state(self, job: BatchJob, run: int) -> RunState | None:
        """Run number `run`'s state; None when this runner knows none."""
        ...


@dataclass(frozen=True)
class ScoringModel:
    """What scoring needs of a loaded version (registry.serving.predictor's LoadedModel)."""

    manifest: ModelManifest
    predictors: Any


class BatchJobs:
    """Jobs over the registry's store. local: input and output may be local paths."""

    def __init__(
        self,
        registry: ModelRegistry,
        runner: JobRunner | None = None,
        load_model: Callable[[str, int], ScoringModel] | None = None,
        s3_client: Any = None,
        local: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        input_uri: str | None = None,
        output_uri: str | None = None,
    ) -> None:
        """input_uri, output_uri: where jobs may read and write (what the deployed batch
        function's role allows); None: anywhere this process can."""
        self.registry = registry
        self.store = registry.store
        self.runner = runner
        self.load_model = load_model
        self.s3_client = s3_client
        self.local = local
        self.clock = clock
        self.input_uri = input_uri
        self.output_uri = output_uri

    def location(self, uri: str) -> Location:
        return open_location(uri, self.s3_client, local=self.local)

    # Submitting and watching ---------------------------------------------------

    def submit(
        self,
        name: str,
        input: str,
        output: str,
        format: BatchFormat,
        version: int | None = None,
        alias: str | None = None,
        probabilities: bool = False,
        id_column: str | None = None,
        job_id: str | None = None,
        rows_per_part: int | None = None,
        tolerated_failure_percent: float | None = None,
        submitted_by: str | None = None,
    ) -> BatchJob:
        if self.runner is None:
            raise BatchJobsUnavailableError(
                "this process runs no batch jobs: deploy the stack's BatchStateMachine, or run "
                "the job against a local server (`make run`)"
            )
        if job_id is not None:
            validate_job_id(job_id)
        state = self.registry.state(name)
        resolved = self.registry.resolve_version(name, state, version, alias)
        manifest = self.registry.get_manifest(name, resolved)
        self._check_servable(manifest, state.upgraded.get(resolved) is not None)
        if probabilities and not manifest.has_predict_proba:
            raise ProbabilitiesUnavailableError(
                f"{manifest.estimator_class} has no predict_proba; leave out probabilities"
            )
        output = output if output.endswith("/") else output + "/"
        _check_within(input, self.input_uri, "input")
        _check_within(output, self.output_uri, "output")
        source, sink = self.location(input), self.location(output)
        _check_apart(source, sink)
        try:
            keys = input_keys(source)
            check_input_columns(source.store, keys[0], format, manifest, id_column)
        except StoreUnavailableError as exc:  # the caller's location, not the registry's store
            raise BatchInputError(
                f"cannot read {input}: {exc.message}: check the bucket and the key, and that "
                "the registry may read them"
            ) from None
        fields: dict[str, Any] = {
            "job_id": job_id or uuid.uuid4().hex[:20],
            "model": name,
            "version": resolved,
            "alias": alias,
            "input": input,
            "output": output,
            "format": format,
            "probabilities": probabilities,
            "id_column": id_column,
            "submitted_at": self.clock(),
            "submitted_by": submitted_by,
        }
        if rows_per_part is not None:
            fields["rows_per_part"] = rows_per_part
        if tolerated_failure_percent is not None:
            fields["tolerated_failure_percent"] = tolerated_failure_percent
        job = BatchJob(**fields)
        run = self._record(job)
        self.runner.start(job, run)
        return job

    def _check_servable(self, manifest: ModelManifest, upgraded: bool) -> None:
        """The batch function runs on the newest line: it serves a compiled form, a version
        of its own line, or one an upgrade check moved to it."""
        compiled = manifest.serving_format is ServingFormat.COMPILED and manifest.serving_key
        if compiled or upgraded or manifest.validated_line in (None, runtime_minor()):
            return
        raise BatchInputError(
            f"version {manifest.version} of {manifest.name!r} is served by the scikit-learn "
            f"{manifest.validated_line} line, and batch jobs run on the {runtime_minor()} line: "
            f"move it with `model-registry runtime check --line {runtime_minor()}`, or register "
            f"it again trained with scikit-learn {runtime_minor()}"
        )

    def _record(self, job: BatchJob) -> int:
        """Write the job (once); a job with the same id and the same work is run again,
        over the same output keys, once its previous run has ended. Returns the run number."""
        if self.store.create(job_key(job.job_id), job.model_dump_json().encode()):
            return 1
        recorded = self.job(job.job_id)
        if not recorded.same_work(job):
            raise BatchJobConflictError(
                f"job {job.job_id!r} already names another job (of {recorded.model} version "
                f"{recorded.version}, {recorded.input} to {recorded.output}): choose another "
                "id, or leave it out"
            )
        summary = self.status(job.job_id)
        if summary.status in (JobStatus.SUBMITTED, JobStatus.RUNNING) and self._run_alive(job):
            raise BatchJobConflictError(
                f"job {job.job_id!r} is still running: watch it with `model-registry batch-"
                f"status {job.job_id} --wait`, and run it again once it ended"
            )
        runs = list(self.store.list_keys(_runs_prefix(job.job_id)))
        stale = [summary_key(job.job_id), plan_key(job.job_id)]
        stale += list(self.store.list_keys(part_results_prefix(job.job_id)))
        self.store.delete(stale)
        run = len(runs) + 2
        self.store.put(f"{_runs_prefix(job.job_id)}{run:04d}", self.clock().isoformat().encode())
        return run

    def _latest_run(self, job_id: str) -> int:
        return 1 + sum(1 for _ in self.store.list_keys(_runs_prefix(job_id)))

    def _run_alive(self, job: BatchJob) -> bool:
        """Whether the engine runs the job's latest run now. A run it knows nothing of (its
        start failed, or the local server that ran it stopped) blocks no retry."""
        assert self.runner is not None
        state = self.runner.state(job, self._latest_run(job.job_id))
        return state is not None and state.running

    def job(self, job_id: str) -> BatchJob:
        validate_job_id(job_id)
        try:
            return BatchJob.model_validate_json(self.store.get(job_key(job_id)))
        except ObjectNotFoundError:
            raise BatchJobNotFoundError(
                f"no batch job {job_id!r}: `model-registry batch NAME --input ... --output ...` "
                "submits one"
            ) from None

    def status(self, job_id: str) -> JobSummary:
        """How the job ended, or how far its run is: read from its parts' results, one listing."""
        job = self.job(job_id)
        try:
            return JobSummary.model_validate_json(self.store.get(summary_key(job_id)))
        except ObjectNotFoundError:
            pass
        progress = self._progress(job)
        run = self._latest_run(job_id)
        state = self.runner.state(job, run) if self.runner is not None else None
        if state is not None and not state.running:
            # The run ended without summing up: the engine's reason is the job's.
            return progress.model_copy(
                update={"status": JobStatus.FAILED, "reason": state.error or "the run ended"}
            )
        return progress

    def _progress(self, job: BatchJob) -> JobSummary:
        try:
            parts = len(json.loads(self.store.get(plan_key(job.job_id))))
        except ObjectNotFoundError:
            return JobSummary(status=JobStatus.SUBMITTED)
        done = [
            counts
            for counts in map(counts_in_key, self.store.list_keys(part_results_prefix(job.job_id)))
            if counts is not None
        ]
        return JobSummary(
            status=JobStatus.RUNNING,
            parts=parts,
            parts_done=len(done),
            rows_read=sum(counts[1] for counts in done),
            rows_scored=sum(counts[2] for counts in done),
            rows_failed=sum(counts[3] for counts in done),
        )

    # The run's steps -------------------------------------------------------------

    def plan(self, job_id: str) -> dict[str, Any]:
        """Split the input into parts and write them where the Distributed Map reads them."""
        job = self.job(job_id)
        source = self.location(job.input)
        parts = plan_parts(source.store, input_keys(source), job.format, job.rows_per_part)
        self.store.put(plan_key(job_id), plan_json(parts))
        planned: dict[str, Any] = {
            "job_id": job_id,
            "parts": len(parts),
            "rows": sum(part.rows for part in parts),
        }
        if isinstance(self.store, S3Store):  # where the Distributed Map reads and writes
            planned["plan_bucket"] = self.store.bucket
            planned["plan_object"] = self.store.prefix + plan_key(job_id)
        return planned

    def parts(self, job_id: str) -> list[InputPart]:
        plan = json.loads(self.store.get(plan_key(job_id)))
        return [InputPart.model_validate(part) for part in plan]

    def score(self, job_id: str, part: InputPart, model: ScoringModel | None = None) -> PartResult:
        """Score one part with the job's version and record what it did."""
        job = self.job(job_id)
        source, sink = self.location(job.input), self.location(job.output)
        if not part.key.startswith(source.key):
            raise BatchInputError(f"part {part.part} reads {part.key!r}, outside the job's input")
        if model is None:
            if self.load_model is None:
                raise BatchJobsUnavailableError("this process loads no models")
            model = self.load_model(job.model, job.version)
        result = score_part(
            job, part, model.manifest, model.predictors, source.store, sink.store, sink.key
        )
        self.store.put(part_result_key(job_id, result), result.model_dump_json().encode())
        return result

    def summarize(self, job_id: str, parts: int | None = None) -> JobSummary:
        """Sum the parts' results up, decide how the job ended, and record it."""
        job = self.job(job_id)
        planned = parts if parts is not None else len(self.parts(job_id))
        keys = sorted(self.store.list_keys(part_results_prefix(job_id)))
        results = [
            PartResult.model_validate_json(self.store.get(key))
            for key in keys
            if counts_in_key(key) is not None and _has_errors(key)
        ]
        done = [counts for counts in map(counts_in_key, keys) if counts is not None]
        sink = self.location(job.output)
        read = sum(counts[1] for counts in done)
        failed = sum(counts[3] for counts in done)
        first_errors: list[RowError] = []
        for result in results:
            first_errors.extend(result.first_errors)
        reason = None
        if len(done) < planned:
            reason = (
                f"{planned - len(done)} of {planned} parts were not scored: see the run's "
                "failed children in Step Functions, and submit the job again with the same id"
            )
        elif read and failed * 100 > job.tolerated_failure_percent * read:
            reason = (
                f"{failed * 100 / read:.2f}% of rows failed ({failed} of {read}); the job "
                f"tolerates {job.tolerated_failure_percent:g}%: each failed row and why is in "
                f"{sink.uri}errors/"
            )
        summary = JobSummary(
            status=JobStatus.FAILED if reason else JobStatus.SUCCEEDED,
            parts=planned,
            parts_done=len(done),
            rows_read=read,
            rows_scored=sum(counts[2] for counts in done),
            rows_failed=failed,
            outputs=[sink.uri + output_name(counts[0], job.format) for counts in done],
            first_errors=first_errors[:MAX_ERRORS_SHOWN],
            reason=reason,
            ended_at=self.clock(),
        )
        self.store.put(summary_key(job_id), summary.model_dump_json().encode())
        return summary


def _has_errors(key: str) -> bool:
    counts = counts_in_key(key)
    return counts is not None and counts[3] > 0


def _runs_prefix(job_id: str) -> str:
    return f"{JOBS_PREFIX}{job_id}/runs/"


def _check_apart(source: Location, sink: Location) -> None:
    """A job must not read what it writes: a re-run would score its own output."""
    same_place = getattr(source.store, "bucket", None) == getattr(sink.store, "bucket", None)
    if same_place and (sink.key.startswith(source.key) or source.key.startswith(sink.key)):
        raise BatchInputError(
            f"the output {sink.uri} is inside the input {source.uri} (or holds it): write the "
            "output under another prefix"
        )


def _check_within(uri: str, allowed: str | None, what: str) -> None:
    if allowed is not None and not uri.startswith(allowed):
        raise BatchInputError(
            f"this registry's batch jobs read and write only where its role allows: put the "
            f"{what} under {allowed} (not {uri[:200]})"
        )


def scoring_model(
    registry: ModelRegistry, name: str, version: int, pickle_policy: PicklePolicy
) -> ScoringModel:
    """A version loaded as predict loads it (a compiled form first, then its skops copy); a
    compiled forest's trees walked by scikit-learn's tree code, which is faster for a part's
    100,000 rows and reaches the same leaves (registry.batching.native_trees)."""
    from registry.batching.native_trees import natively_walked
    from registry.compiled import CompiledTrees
    from registry.serving.fastpath import predictors_for
    from registry.serving.predictor import load_version

    manifest = registry.get_manifest(name, version)
    state = registry.state(name)
    copy = state.upgraded.get(version) or state.serving.get(version)
    estimator = load_version(registry, manifest, pickle_policy, copy).estimator
    if isinstance(estimator, CompiledTrees):
        estimator = natively_walked(estimator)
    return ScoringModel(manifest, predictors_for(estimator))
