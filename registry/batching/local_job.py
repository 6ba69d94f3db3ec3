"""The same job on one machine: the state machine's steps, its parts scored by a pool of
processes as wide as the machine (the embedded default, behind `make run`).

Each worker loads the version once and scores one part at a time, with one native thread:
its memory is bounded by a part's rows, not by the input. The workers outlive a job: the
next one finds them started, with the scoring code imported (and, for the same version, the
model loaded). The parts, the code that scores
them and the keys they are written under are the deployed job's, so the output is the
same, byte for byte.
"""

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from registry.batching.jobs import BatchJob, InputPart
from registry.batching.running import BatchJobs, RunState, ScoringModel, scoring_model
from registry.config import PicklePolicy
from registry.errors import RegistryError
from registry.observability import logger
from registry.registry import ModelRegistry
from registry.store import open_store


class LocalJobRunner:
    """Runs each job in a thread of its own, which feeds its parts to a process pool."""

    def __init__(
        self,
        registry_uri: str,
        workers: int | None = None,
        pickle_policy: PicklePolicy = PicklePolicy.CONVERT,
    ) -> None:
        self.registry_uri = registry_uri
        self.workers = workers or os.cpu_count() or 1
        self.pickle_policy = pickle_policy
        self._pool: ScoringPool | None = None
        self._runs: dict[str, threading.Thread] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def start(self, job: BatchJob, run: int) -> None:
        thread = threading.Thread(
            target=self._run, args=(job,), name=f"batch-{job.job_id}", daemon=True
        )
        with self._lock:
            self._runs[job.job_id] = thread
            self._errors.pop(job.job_id, None)
        thread.start()

    def state(self, job: BatchJob, run: int) -> RunState | None:
        with self._lock:
            thread = self._runs.get(job.job_id)
            error = self._errors.get(job.job_id)
        if thread is None:
            return None
        return RunState(running=thread.is_alive(), error=error)

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        with self._lock:
            thread = self._runs.get(job_id)
        if thread is not None:
            thread.join(timeout)

    def pool(self) -> "ScoringPool | None":
        """The server's workers, started with its first job that has more than one part."""
        if self.workers <= 1:
            return None
        with self._lock:
            if self._pool is None:
                self._pool = ScoringPool(self.registry_uri, self.workers, self.pickle_policy)
            return self._pool

    def _run(self, job: BatchJob) -> None:
        try:
            run_job(self.registry_uri, job.job_id, self.workers, self.pickle_policy, self.pool())
        except Exception as exc:  # the job's status says why; the server goes on
            message = exc.message if isinstance(exc, RegistryError) else type(exc).__name__
            logger.exception("batch job failed", extra={"job_id": job.job_id})
            with self._lock:
                self._errors[job.job_id] = f"the local run stopped: {message}"


class ScoringPool:
    """Worker processes that score parts, kept for every job a server runs: each imports the
    scoring code once, and keeps the last version it loaded. spawn: the server's threads (and
    their locks) are not copied into the workers."""

    def __init__(self, registry_uri: str, workers: int, pickle_policy: PicklePolicy) -> None:
        self.workers = workers
        self.executor = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(registry_uri, pickle_policy),
        )

    def warm(self, model: tuple[str, int] | None = None) -> None:
        """Start every worker now (each imports what scoring needs), not on the first part;
        with a (name, version), each loads that version too, as a worker does for its first
        part of a job."""
        for _ in self.executor.map(_ready, [model] * self.workers):
            pass

    def score(self, job_id: str, parts: list[InputPart]) -> None:
        """Every part; one that fails is logged and left unscored, as the Distributed Map
        leaves a failed child: the summary counts it."""
        futures = [self.executor.submit(_score, job_id, part.model_dump()) for part in parts]
        for part, future in zip(parts, futures, strict=True):
            try:
                future.result()
            except Exception:
                _part_failed(job_id, part)

    def peak_mb(self) -> float:
        """The most memory a worker has held (its peak resident set), in MB."""
        return max(self.executor.map(_peak_mb, range(self.workers * 4)))

    def close(self) -> None:
        self.executor.shutdown(cancel_futures=True)


def run_job(
    registry_uri: str,
    job_id: str,
    workers: int,
    pickle_policy: PicklePolicy,
    pool: ScoringPool | None = None,
) -> None:
    """Plan, score every part (in this process with one worker, else in the pool), summarize."""
    jobs = BatchJobs(ModelRegistry(open_store(registry_uri)), local=True)
    planned = jobs.plan(job_id)
    parts = jobs.parts(job_id)
    if pool is not None and len(parts) > 1:
        pool.score(job_id, parts)
    elif workers <= 1 or len(parts) <= 1:
        _start_worker(registry_uri, pickle_policy)
        for part in parts:
            try:
                _score(job_id, part.model_dump())
            except Exception:
                _part_failed(job_id, part)
    else:
        own = ScoringPool(registry_uri, min(workers, len(parts)), pickle_policy)
        try:
            own.score(job_id, parts)
        finally:
            own.close()
    jobs.summarize(job_id, planned["parts"])


def _part_failed(job_id: str, part: InputPart) -> None:
    logger.exception("batch part failed", extra={"job_id": job_id, "part": part.part})


# One per worker process: the jobs it serves, and the models it loaded.
_worker: dict[str, Any] = {}


def _start_worker(registry_uri: str, pickle_policy: PicklePolicy) -> None:
    from threadpoolctl import threadpool_limits

    registry = ModelRegistry(open_store(registry_uri))
    _worker["jobs"] = BatchJobs(registry, local=True)
    _worker["models"] = {}
    _worker["pickle_policy"] = pickle_policy
    _worker["pooled"] = multiprocessing.parent_process() is not None
    if _worker["pooled"]:
        # A pool as wide as the machine: one native thread a process. OpenMP reads this when
        # scikit-learn first loads it; what is loaded already is limited now, and again once
        # a model is loaded (registry.serving.native_threads does the same for predict).
        os.environ["OMP_NUM_THREADS"] = "1"
        threadpool_limits(1)


def _peak_mb(_: int) -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ready(model: tuple[str, int] | None) -> bool:
    # What every part needs, imported now: the scoring code, and pandas, which it imports
    # only to read a part (the register function imports scoring to check a header).
    import pandas  # noqa: F401

    import registry.batching.scoring  # noqa: F401

    if model is not None:
        _model(*model)
    return True


def _score(job_id: str, part: dict[str, Any]) -> int:
    jobs: BatchJobs = _worker["jobs"]
    job = jobs.job(job_id)
    model = _model(job.model, job.version)
    return jobs.score(job_id, InputPart.model_validate(part), model).part


def _model(name: str, version: int) -> ScoringModel:
    """The version, loaded once a worker (it keeps the last one)."""
    models: dict[tuple[str, int], ScoringModel] = _worker["models"]
    model = models.get((name, version))
    if model is None:
        jobs: BatchJobs = _worker["jobs"]
        model = scoring_model(jobs.registry, name, version, _worker["pickle_policy"])
        models.clear()
        models[(name, version)] = model
        if _worker["pooled"]:
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)
    return model
