"""The validator's contract: what register sends it, what it answers, and what that means.

Loading an artifact runs code (a joblib file is a pickle), so it happens only in the
validator function (functions/validate), which cannot write to the registry: its role
has no S3 permission and it holds no secret, and it loads each artifact in a child
process of its own. Register sends the bytes and gets JSON back. This module is plain
data: importing it loads neither scikit-learn nor joblib.

An answer is untrusted, since the artifact's own code may have written it. Register
keeps only what fits the schemas below (closed reason codes, bounded Python names and
version strings), and every message a caller sees is written here from those codes,
never from text the artifact produced.
"""

import platform
import struct
from enum import StrEnum
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from registry.config import DEFAULT_MAX_LOADED_BYTES
from registry.errors import (
    ArtifactTooLargeError,
    IncompatibleArtifactError,
    InvalidArtifactError,
    PickleRefusedError,
    RegistryError,
)
from registry.manifest import (
    MAX_CHECK_ROWS,
    MAX_EXAMPLE_ROWS,
    ArtifactFormat,
    CheckAnswers,
    InputSignature,
    RuntimeVersions,
    ServingFormat,
    StoredLabel,
    VersionCheck,
    VersionText,
)

# A dotted Python name, such as sklearn.ensemble._forest.RandomForestClassifier.
PythonName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,199}$")]
FeatureName = Annotated[str, Field(max_length=256)]
MAX_FEATURE_NAMES = 100_000
MAX_CLASSES = 100_000
MAX_UNTRUSTED_TYPES_SHOWN = 10


@cache
def runtime_versions() -> RuntimeVersions:
    """What this environment runs, read from package metadata (nothing is imported)."""

    def installed(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    return RuntimeVersions(
        python=platform.python_version(),
        scikit_learn=installed("scikit-learn") or "unknown",
        joblib=installed("joblib") or "unknown",
        numpy=installed("numpy") or "unknown",
        skops=installed("skops"),
    )


class RejectionReason(StrEnum):
    NOT_LOADABLE = "not_loadable"
    NOT_AN_ESTIMATOR = "not_an_estimator"
    NOT_SCIKIT_LEARN = "not_scikit_learn"
    UNFITTED = "unfitted"
    OTHER_SCIKIT_LEARN = "other_scikit_learn_version"
    UNTRUSTED_TYPES = "untrusted_types"
    PICKLE_REFUSED = "pickle_refused"
    NOT_CONVERTIBLE = "not_convertible"
    TOO_LARGE = "too_large"
    TOO_LARGE_LOADED = "too_large_loaded"
    NOT_ROWS = "not_rows"
    ROWS_UNKNOWN = "rows_unknown"
    STOPPED = "stopped"


class Rejection(BaseModel):
    """Why an artifact was refused, as codes and checked names only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: RejectionReason
    type_name: PythonName | None = None
    pickled_with: VersionText | None = None
    untrusted_types: Annotated[list[PythonName], Field(max_length=1000)] = Field(
        default_factory=list
    )
    loaded_bytes: int | None = Field(default=None, ge=0)


class ArtifactRejected(Exception):
    """Raised where artifacts are loaded; carries the Rejection, never an exception's text."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.reason.value)
        self.rejection = rejection


def reject(reason: RejectionReason, **details: object) -> ArtifactRejected:
    return ArtifactRejected(Rejection.model_validate({"reason": reason, **details}))


def rejection_error(
    rejection: Rejection,
    runtime: RuntimeVersions | None = None,
    max_loaded_bytes: int | None = None,
) -> RegistryError:
    """The caller's error for a rejection, in our words: what was wrong and what to send."""
    runs = runtime.scikit_learn if runtime is not None else "this registry's version"
    thing = rejection.type_name or "object"
    match rejection.reason:
        case RejectionReason.NOT_LOADABLE:
            return InvalidArtifactError(
                "the artifact is not a joblib or skops file that loads with scikit-learn "
                f"{runs}: save the fitted estimator with joblib.dump or skops.io.dump"
            )
        case RejectionReason.NOT_AN_ESTIMATOR:
            return InvalidArtifactError(
                f"the artifact holds a {thing}, not an estimator with predict(): "
                "save the fitted estimator or pipeline itself"
            )
        case RejectionReason.NOT_SCIKIT_LEARN:
            return InvalidArtifactError(
                f"the artifact holds a {thing}, which is not a scikit-learn estimator: "
                "register a scikit-learn estimator or pipeline"
            )
        case RejectionReason.UNFITTED:
            return InvalidArtifactError(
                f"the artifact holds an unfitted {thing}: call fit() before saving it"
            )
        case RejectionReason.OTHER_SCIKIT_LEARN:
            return IncompatibleArtifactError(
                f"the artifact was saved with scikit-learn {rejection.pickled_with or 'another'}"
                f"; this registry runs {runs}: save it again with scikit-learn {runs}",
                rejection.pickled_with,
            )
        case RejectionReason.UNTRUSTED_TYPES:
            return InvalidArtifactError(
                f"the skops file holds types that are not scikit-learn's "
                f"({_listed(rejection.untrusted_types)}); only scikit-learn's own types (and "
                "the functions it stores itself) are loaded from skops files"
            )
        case RejectionReason.PICKLE_REFUSED:
            return PickleRefusedError(
                "this registry refuses joblib and pickle artifacts (PICKLE_ARTIFACTS=deny): "
                "save the model with skops.io.dump and register the .skops file"
            )
        case RejectionReason.NOT_CONVERTIBLE:
            held = (
                f"it holds types that are not scikit-learn's ({_listed(rejection.untrusted_types)})"
                if rejection.untrusted_types
                else "skops could not save it, or its copy did not answer as the model does"
            )
            return PickleRefusedError(
                "the joblib artifact cannot be served without unpickling it: this registry serves "
                f"joblib models from a skops copy it makes of them, and {held}. Use scikit-learn's "
                "own estimators and functions (its helpers, such as functools.partial around its "
                "functions, convert by themselves), or save the model with skops.io.dump and "
                "register the .skops file"
            )
        case RejectionReason.TOO_LARGE:
            return ArtifactTooLargeError("the artifact is larger than the registry accepts")
        case RejectionReason.TOO_LARGE_LOADED:
            limit = f" of {_megabytes(max_loaded_bytes)}" if max_loaded_bytes else ""
            size = (
                f"{_megabytes(rejection.loaded_bytes)}"
                if rejection.loaded_bytes
                else "more than the limit"
            )
            return ArtifactTooLargeError(
                f"the model takes {size} in memory once loaded, over the registry's limit{limit} "
                "(MAX_LOADED_BYTES): register a smaller model (fewer or shallower trees, fewer "
                "features), or raise MaxLoadedBytes together with the predict function's memory"
            )
        case RejectionReason.ROWS_UNKNOWN:
            return InvalidArtifactError(
                "the model does not say what rows it takes (it has no n_features_in_: a "
                "pipeline that starts with a text or dict vectorizer fitted on a plain list?), "
                "so nothing shows that it answers one prediction a row; nothing was registered. "
                "Register it with an input_example of rows it predicts on, or fit it on a "
                "DataFrame with a ColumnTransformer over the text column, for example "
                "make_pipeline(make_column_transformer((TfidfVectorizer(), 'text')), "
                "MultinomialNB())"
            )
        case RejectionReason.NOT_ROWS:
            return InvalidArtifactError(
                "the model does not answer one prediction per row: it takes a sequence of "
                "documents (fitted on a plain list of texts?), so a row of columns would be read "
                "as documents; nothing was registered. Fit it on a DataFrame with a "
                "ColumnTransformer over the text column, for example make_pipeline("
                "make_column_transformer((TfidfVectorizer(), 'text')), MultinomialNB()), and "
                'register it with an input_example of rows such as [{"text": "..."}]'
            )
        case RejectionReason.STOPPED:
            return InvalidArtifactError(
                "loading the artifact stopped the validator (it exited, crashed, or ran out of "
                "memory or time); nothing was registered: check that it loads with "
                "joblib.load or skops.io.load in a fresh Python"
            )


def _listed(names: list[str]) -> str:
    shown = names[:MAX_UNTRUSTED_TYPES_SHOWN]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _megabytes(size: int | None) -> str:
    return f"{(size or 0) / 1_000_000:,.1f} MB"


class ExampleFailure(StrEnum):
    """How the model failed on the registrant's input_example."""

    DOES_NOT_FIT = "does_not_fit"  # the rows do not fit the signature (register says how)
    NOT_PREDICTED = "not_predicted"  # predict() raised on them


class ExampleOutcome(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    failure: ExampleFailure
    exception: PythonName | None = None


class EstimatorDescription(BaseModel):
    """What the validator found the artifact to hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    estimator_class: PythonName
    n_features_in: int | None = Field(default=None, ge=0)
    feature_names: Annotated[list[FeatureName], Field(max_length=MAX_FEATURE_NAMES)] | None = None
    classes: Annotated[list[StoredLabel], Field(max_length=MAX_CLASSES)] | None = None
    output_classes: (
        Annotated[
            list[Annotated[list[StoredLabel], Field(max_length=MAX_CLASSES)]],
            Field(max_length=1000),
        ]
        | None
    ) = None
    has_predict_proba: bool = False
    # Derived from the fitted model alone; register completes it with the input_example.
    signature: InputSignature | None = None
    # Set when an input_example was sent and the model did not predict on it.
    example: ExampleOutcome | None = None
    # The memory the model took while it was loaded and predicted on rows.
    loaded_bytes: int | None = Field(default=None, ge=0)


class ValidateArtifactRequest(BaseModel):
    """The validator function's invocation payload."""

    model_config = ConfigDict(extra="forbid")

    format: ArtifactFormat
    # The bytes themselves, or a presigned GET URL of a copy register staged.
    artifact_base64: str | None = None
    artifact_url: str | None = None
    max_bytes: int = Field(ge=1)
    # The most memory the loaded model may take (MAX_LOADED_BYTES).
    max_loaded_bytes: int = Field(default=DEFAULT_MAX_LOADED_BYTES, ge=1)
    # The most bytes the answer may take (Lambda's response limit); None: no limit. A serving
    # copy that would not fit is PUT to serving_upload_url, if given, else left out.
    answer_limit_bytes: int | None = Field(default=None, ge=0)
    serving_upload_url: str | None = None
    # Rows the model must predict on (the registrant's input_example).
    input_example: Annotated[list[Any], Field(max_length=MAX_EXAMPLE_ROWS)] | None = None
    # An upgrade check's: the version's check rows, to answer on (check_answers), from an
    # artifact of an older scikit-learn (other_version); its serving copy is then always
    # made on this line.
    check_rows: Annotated[list[Any], Field(max_length=MAX_CHECK_ROWS)] | None = None
    other_version: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.artifact_base64 is None) == (self.artifact_url is None):
            raise ValueError("send either artifact_base64 or artifact_url")
        return self


class ChildFindings(BaseModel):
    """What the sandbox's child answers (registry/inspecting/sandbox.py): a description, or a
    rejection; and what its serving copy, if it made one, holds."""

    model_config = ConfigDict(extra="forbid")

    estimator: EstimatorDescription | None = None
    rejection: Rejection | None = None
    serving_format: ServingFormat | None = None
    # At registration, the rows checked and the answers; in an upgrade check, the answers.
    check: VersionCheck | None = None
    check_answers: CheckAnswers | None = None


class ValidationReport(BaseModel):
    """The validator function's answer: a description, or a rejection."""

    model_config = ConfigDict(extra="forbid")

    runtime: RuntimeVersions
    estimator: EstimatorDescription | None = None
    rejection: Rejection | None = None
    serving_base64: str | None = None
    serving_uploaded: bool = False
    serving_format: ServingFormat | None = None
    check: VersionCheck | None = None
    check_answers: CheckAnswers | None = None

    @model_validator(mode="after")
    def _one_outcome(self) -> Self:
        if (self.estimator is None) == (self.rejection is None):
            raise ValueError("a report has either an estimator or a rejection")
        return self


# The local worker's framing (registry.inspecting.worker, registry.registering.validator): an
# 8-byte length, then that many bytes of JSON. The worker answers with a status byte ("0"
# handled, "1" the handler failed, as Lambda's FunctionError), then a frame.
FRAME_HEADER = struct.Struct("!Q")


def read_frame(stream: Any) -> bytes | None:
    header = stream.read(FRAME_HEADER.size)
    if len(header) < FRAME_HEADER.size:
        return None
    (length,) = FRAME_HEADER.unpack(header)
    data: bytes = stream.read(length)
    return data if len(data) == length else None


def write_frame(stream: Any, data: bytes) -> None:
    stream.write(FRAME_HEADER.pack(len(data)) + data)
    stream.flush()
