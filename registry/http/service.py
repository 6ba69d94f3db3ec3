"""Factories that build the registry from the settings once per warm container.

They are lru_cache factories rather than module globals so tests can point them at another
store with reset(). Each imports its role's package (registering, serving) when first
called, not when this module is imported: the register function never imports serving, nor
the predict function registering (tests/unit/test_layout.py). Nothing here loads
scikit-learn.
"""

import atexit
import random
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from registry.config import PicklePolicy, Settings
from registry.errors import RegistryError
from registry.observability import logger
from registry.registry import ModelRegistry
from registry.store import open_store

if TYPE_CHECKING:
    from registry.batching.running import BatchJobs
    from registry.registering.deletion import ModelDeleter
    from registry.registering.registration import Registrar
    from registry.registering.upgrade import LineUpgrader
    from registry.registering.validator import ChildProcessInvoker, Validator
    from registry.serving.capturing import Capturer
    from registry.serving.predictor import Predictor
    from registry.serving.routing import LineRouter

# How long register waits for a validator, and the front for a line: less than API Gateway's 29 s.
VALIDATOR_READ_TIMEOUT_SECONDS = 25


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_environ()


@lru_cache(maxsize=1)
def model_registry() -> ModelRegistry:
    config = settings()
    return ModelRegistry(open_store(config.registry_uri, upload_url=config.local_upload_url))


@lru_cache(maxsize=8)
def local_validator_process(
    pickle_policy: PicklePolicy, measures_off: str = "", python: str = sys.executable
) -> "ChildProcessInvoker":
    """The local stand-in for the validator function: one child process, kept across resets;
    an older runtime line's runs that line's interpreter."""
    from registry.registering.validator import ChildProcessInvoker

    invoker = ChildProcessInvoker(pickle_policy, measures_off=measures_off, python=python)
    atexit.register(invoker.close)
    return invoker


def lambda_client(max_attempts: int = 1) -> Any:
    """boto3's Lambda client: a validation is not retried (max_attempts 1); a line's predict
    function is, when throttled or unreachable (predicting twice changes nothing)."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2,
        read_timeout=VALIDATOR_READ_TIMEOUT_SECONDS,
        retries={"max_attempts": max_attempts, "mode": "standard"},
    )
    return boto3.client("lambda", config=config)


@lru_cache(maxsize=1)
def validator() -> "Validator":
    """The validator function when VALIDATOR_FUNCTION names one; else a local child process."""
    from registry.registering.validator import Validator

    config = settings()
    store = model_registry().store
    if config.validator_function:
        return Validator(
            lambda_client(),
            config.validator_function,
            store,
            config.max_artifact_bytes,
            max_loaded_bytes=config.max_loaded_bytes,
        )
    invoker = local_validator_process(config.pickle_artifacts, config.sandbox_measures_off)
    return Validator(
        invoker,
        "local",
        store,
        config.max_artifact_bytes,
        inline_limit=None,
        max_loaded_bytes=config.max_loaded_bytes,
    )


@lru_cache(maxsize=1)
def registrar() -> "Registrar":
    from registry.registering.registration import Registrar

    config = settings()
    return Registrar(
        model_registry(),
        validator(),
        max_artifact_bytes=config.max_artifact_bytes,
        pickle_policy=config.pickle_artifacts,
        line_validators=line_validators(),
    )


def line_validators() -> dict[str, "Validator"]:
    """Older runtime lines' validators, by minor: each line's validator function (OLDER_LINES),
    or locally a child of each line's interpreter (RUNTIME_LINES)."""
    from registry.registering.validator import Validator

    config = settings()
    store = model_registry().store
    deployed = config.line_validator_functions()
    if deployed:
        client = lambda_client()
        return {
            minor: Validator(
                client,
                function,
                store,
                config.max_artifact_bytes,
                max_loaded_bytes=config.max_loaded_bytes,
            )
            for minor, function in deployed.items()
        }
    return {
        minor: Validator(
            local_validator_process(config.pickle_artifacts, config.sandbox_measures_off, python),
            f"local-{minor}",
            store,
            config.max_artifact_bytes,
            inline_limit=None,
            max_loaded_bytes=config.max_loaded_bytes,
        )
        for minor, python in config.line_interpreters().items()
    }


@lru_cache(maxsize=1)
def line_upgrader() -> "LineUpgrader":
    """Upgrade checks, in the validators of every line registration uses."""
    from registry.registering.upgrade import LineUpgrader

    lines = registrar()
    validators = {lines.lines.newest: lines.validator, **lines.line_validators}
    return LineUpgrader(model_registry(), validators, lines.lines)


@lru_cache(maxsize=1)
def model_deleter() -> "ModelDeleter":
    from registry.registering.deletion import ModelDeleter

    return ModelDeleter(model_registry())


@lru_cache(maxsize=1)
def predictor() -> "Predictor":
    from registry.serving.cache import ModelCache
    from registry.serving.native_threads import cpu_share_threads
    from registry.serving.predictor import LoadedModel, Predictor

    config = settings()
    return Predictor(
        model_registry(),
        ModelCache[LoadedModel](config.cache_max_bytes),
        alias_ttl_seconds=config.alias_ttl_seconds,
        max_instances=config.max_instances,
        pickle_policy=config.pickle_artifacts,
        native_threads=config.native_threads
        or cpu_share_threads(config.aws_lambda_function_memory_size),
        max_loaded_bytes=config.max_loaded_bytes,
        router=line_router(),
    )


def line_router() -> "LineRouter | None":
    """Older runtime lines' predict functions (OLDER_LINES), or locally a process of each
    line's interpreter (RUNTIME_LINES); None when there is no older line."""
    from registry.serving.routing import LineInvoker, LineProcess, LineRouter

    config = settings()
    deployed = config.line_predict_functions()
    if deployed:
        client = lambda_client(max_attempts=2)
        return LineRouter(dict.fromkeys(deployed, client), deployed)
    interpreters = config.line_interpreters()
    if not interpreters:
        return None
    processes: dict[str, LineInvoker] = {}
    for minor, python in interpreters.items():
        process = processes[minor] = LineProcess(python)
        atexit.register(process.close)
    return LineRouter(processes, {minor: f"local-{minor}" for minor in processes})


@lru_cache(maxsize=1)
def batch_jobs() -> "BatchJobs":
    """Batch jobs over the registry: run by the state machine (BATCH_STATE_MACHINE), or here
    (BATCH_LOCAL_WORKERS, the local server); the batch function loads one version at a time."""
    from registry.batching.running import BatchJobs, JobRunner, ScoringModel, scoring_model

    config = settings()
    runner: JobRunner | None = None
    if config.batch_state_machine:
        from registry.batching.state_machine import StepFunctionsRunner

        runner = StepFunctionsRunner(stepfunctions_client(), config.batch_state_machine)
    elif config.batch_local_workers is not None:
        from registry.batching.local_job import LocalJobRunner

        runner = LocalJobRunner(
            config.registry_uri, config.batch_local_workers, config.pickle_artifacts
        )
    loaded: dict[tuple[str, int], ScoringModel] = {}

    def load_model(name: str, version: int) -> ScoringModel:
        if (name, version) not in loaded:
            loaded.clear()  # one version at a time: a warm container scores one job's parts
            loaded[(name, version)] = scoring_model(
                model_registry(), name, version, config.pickle_artifacts
            )
        return loaded[(name, version)]

    return BatchJobs(
        model_registry(),
        runner,
        load_model=load_model,
        local=config.batch_local_workers is not None,
        input_uri=config.batch_input_uri,
        output_uri=config.batch_output_uri,
    )


def stepfunctions_client() -> Any:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=10, retries={"mode": "standard"})
    return boto3.client("stepfunctions", config=config)


@lru_cache(maxsize=1)
def capturer() -> "Capturer":
    """Captures the share of predict requests the model (or CAPTURE_SAMPLE_PERCENT) asks for:
    as a log line deployed (CAPTURE_TO=log), into the registry's store locally."""
    from registry.config import CaptureTarget
    from registry.serving.capturing import Capturer, LogLineSink, StoreSink

    config = settings()
    sink = (
        LogLineSink()
        if config.capture_to is CaptureTarget.LOG
        else StoreSink(model_registry().store)
    )
    return Capturer(sink, config.capture_sample_percent, predictor().capture_percent)


def reset() -> None:
    """Forget the settings, store and cached models (tests use this between cases)."""
    for factory in (
        settings,
        model_registry,
        validator,
        registrar,
        line_upgrader,
        model_deleter,
        predictor,
        capturer,
        batch_jobs,
    ):
        factory.cache_clear()


def preload_default_model() -> bool:
    """Load DEFAULT_MODEL into the predictor's cache now: at init, or into a SnapStart snapshot.

    A model that cannot be loaded is logged, not raised: the function still serves the others.
    """
    name = settings().default_model
    try:
        served = predictor().model(name)
    except RegistryError as exc:
        logger.warning("default model not preloaded", extra={"model": name, "error_code": exc.code})
        return False
    logger.info(
        "default model preloaded",
        extra={"model": name, "version": served.loaded.manifest.version, "load_ms": served.load_ms},
    )
    return True


def renew_after_restore() -> None:
    """After a SnapStart restore: new S3 connections, fresh randomness, aliases read again.

    Loaded models stay: they are what the snapshot is for.
    """
    model_registry().store.renew()
    predictor().forget_views()
    random.seed()
    import numpy  # the predict function's: the register function never gets here

    numpy.random.seed()


def register_snapshot_hooks() -> bool:
    """Run renew_after_restore after every SnapStart restore, where the runtime offers hooks."""
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:  # not running under Lambda's Python runtime
        return False
    register_after_restore(renew_after_restore)
    return True
