"""Typed settings read from the environment, in one place.

It imports nothing of ours, so reading the settings never loads scikit-learn: the
defaults other modules use live here, and they import them from here.
"""

import os
from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_CACHE_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_ALIAS_TTL_SECONDS = 30.0
DEFAULT_MAX_INSTANCES = 10_000
DEFAULT_MAX_ARTIFACT_BYTES = 128 * 1024 * 1024
# What one model may take in memory once loaded: as much as the default cache holds.
DEFAULT_MAX_LOADED_BYTES = 256 * 1024 * 1024
DEFAULT_UPLOAD_EXPIRES_IN = 900
# Only scripts/local_api.py sets these; a Lambda function never needs them.
LOCAL_ONLY_SETTINGS = frozenset(
    {"local_upload_url", "sandbox_measures_off", "runtime_lines", "batch_local_workers"}
)
# Lambda sets these itself; a template never does.
SET_BY_LAMBDA = frozenset({"aws_lambda_function_memory_size"})


class PicklePolicy(StrEnum):
    """What becomes of joblib (pickle) artifacts; skops files are always accepted.

    convert: loaded only in the validator's sandbox, and served from a skops or compiled
      copy the validator made of the loaded model: predict never unpickles. An artifact
      that converts to neither is refused.
    deny: refused; only skops files are registered.
    allow-unsafe: also served from a pickle where no skops or compiled copy could be made:
      predict then unpickles it, and its code runs in the process that serves every model.
    """

    CONVERT = "convert"
    DENY = "deny"
    ALLOW_UNSAFE = "allow-unsafe"


class CaptureTarget(StrEnum):
    """Where captured predictions go: a log line of their own (deployed: the log group's
    subscription sends them to Firehose), or the registry's store (the local server)."""

    LOG = "log"
    STORE = "store"


class Settings(BaseModel):
    """REGISTRY_URI: 's3://bucket[/prefix]' or a local directory (the embedded store).

    DEFAULT_MODEL: the model /classify serves when the request names none.
    CACHE_MAX_BYTES: the predict function's model cache bound, in bytes of loaded models.
    ALIAS_TTL_SECONDS: how long a warm predict container trusts what it read of aliases,
      archived versions and the latest version.
    MAX_INSTANCES: the most instances one classify request may carry.
    MAX_ARTIFACT_BYTES: the largest artifact registration accepts (counted on the bytes read).
    MAX_LOADED_BYTES: the most memory one model may take once loaded: registration refuses
      a larger one (measured in the validator), and predict refuses to read a skops file
      whose members would take more.
    UPLOAD_EXPIRES_SECONDS: how long an upload URL stays valid.
    LOCAL_UPLOAD_URL: where scripts/local_api.py takes uploads for a directory store.
    PRELOAD_DEFAULT_MODEL: load DEFAULT_MODEL while the predict function initialises.
    PICKLE_ARTIFACTS: 'convert' joblib artifacts to skops or compiled serving copies (the
      default), 'deny' them (skops only), or 'allow-unsafe' predict to unpickle them.
    VALIDATOR_FUNCTION: the Lambda function register invokes to load and check artifacts;
      unset, a local child process with no credentials does it (scripts/local_api.py).
    OLDER_LINES: the older runtime lines the stack deploys, space-separated ("1.8 1.7"):
      each has a validator function, VALIDATOR_FUNCTION's name with the line's minor after a
      dash ("<stack>-validate-1-8"), and a predict function, LINE_FUNCTION_PREFIX then the
      minor ("<stack>-predict-1-8"). template.yaml sets them (`make lines`).
    LINE_FUNCTION_PREFIX: the front predict function's: where it finds the older lines'.
    RUNTIME_LINES: (local servers only) older runtime lines to serve, as space-separated
      MINOR=PYTHON pairs ("1.8=.venv-lines/1.8/bin/python"): a child of that interpreter
      validates an artifact saved with that scikit-learn, and another predicts with it.
    SANDBOX_MEASURES_OFF: (local servers only) sandbox measures to leave off, comma-separated
      (registry/inspecting/isolation.py: SandboxMeasures), on a machine whose kernel lacks them.
    BATCH_STATE_MACHINE: the state machine that runs batch jobs (its ARN); unset, jobs run
      on this machine when BATCH_LOCAL_WORKERS is set, else batch jobs are refused.
    BATCH_INPUT_URI, BATCH_OUTPUT_URI: where deployed batch jobs may read and write
      (s3://bucket/prefix/): what the batch function's role allows; unset, anywhere.
    BATCH_LOCAL_WORKERS: (local servers only) run batch jobs here, in a pool of this many
      processes (0: one per core); unset, no local batch jobs.
    NATIVE_THREADS: the most threads predict's OpenMP and BLAS pools use; 0, the
      function's CPU share: one per 1,769 MB of AWS_LAMBDA_FUNCTION_MEMORY_SIZE (which
      Lambda sets), at least one; one outside Lambda.
    CAPTURE_SAMPLE_PERCENT: the share of predict requests captured with their answers
      (registry/capture.py), for a model whose state sets none of its own.
    CAPTURE_TO: 'log' (a line on standard output, as deployed) or 'store' (under the
      registry's capture/ prefix, as the local server keeps them).
    """

    model_config = ConfigDict(frozen=True)

    registry_uri: str = Field(default=".registry", min_length=1)
    default_model: str = "moons"
    cache_max_bytes: int = Field(default=DEFAULT_CACHE_MAX_BYTES, ge=0)
    alias_ttl_seconds: float = Field(default=DEFAULT_ALIAS_TTL_SECONDS, ge=0)
    max_instances: int = Field(default=DEFAULT_MAX_INSTANCES, ge=1)
    max_artifact_bytes: int = Field(default=DEFAULT_MAX_ARTIFACT_BYTES, ge=1)
    max_loaded_bytes: int = Field(default=DEFAULT_MAX_LOADED_BYTES, ge=1)
    upload_expires_seconds: int = Field(default=DEFAULT_UPLOAD_EXPIRES_IN, ge=1, le=7 * 24 * 3600)
    local_upload_url: str | None = None
    preload_default_model: bool = False
    pickle_artifacts: PicklePolicy = PicklePolicy.CONVERT
    sandbox_measures_off: str = ""
    runtime_lines: str = ""
    older_lines: str = ""
    line_function_prefix: str | None = None
    validator_function: str | None = None
    batch_state_machine: str | None = None
    batch_input_uri: str | None = None
    batch_output_uri: str | None = None
    batch_local_workers: int | None = Field(default=None, ge=0, le=256)
    native_threads: int = Field(default=0, ge=0, le=64)
    capture_sample_percent: float = Field(default=0.0, ge=0, le=100)
    capture_to: CaptureTarget = CaptureTarget.STORE
    aws_lambda_function_memory_size: int | None = Field(default=None, ge=128)

    def line_interpreters(self) -> dict[str, str]:
        """RUNTIME_LINES as {minor: interpreter}."""
        pairs = (pair.partition("=") for pair in self.runtime_lines.split())
        return {minor: python for minor, _, python in pairs if minor and python}

    def line_validator_functions(self) -> dict[str, str]:
        """The deployed older lines' validator functions, by minor."""
        if not self.validator_function:
            return {}
        return {
            minor: f"{self.validator_function}-{_dashed(minor)}"
            for minor in self.older_lines.split()
        }

    def line_predict_functions(self) -> dict[str, str]:
        """The deployed older lines' predict functions, by minor."""
        if not self.line_function_prefix:
            return {}
        return {
            minor: f"{self.line_function_prefix}{_dashed(minor)}"
            for minor in self.older_lines.split()
        }

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        values = {field: env[field.upper()] for field in cls.model_fields if field.upper() in env}
        return cls.model_validate(values)


def _dashed(minor: str) -> str:
    """'1-8' of '1.8': a line's part of its functions' names."""
    return minor.replace(".", "-")
