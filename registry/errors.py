"""Errors that carry their HTTP status and a machine-readable code.

Convention: 400 when the request cannot be parsed at all (malformed JSON);
422 when it parses but its content is invalid (schema, names, features, the
artifact itself); 404 for things that do not exist; 5xx only for faults that
are not the caller's (a tampered artifact, an unreachable store).
"""

from typing import ClassVar


class RegistryError(Exception):
    code: ClassVar[str] = "registry_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidNameError(RegistryError):
    code = "invalid_name"
    http_status = 422


class InvalidArtifactError(RegistryError):
    """The uploaded bytes are not a joblib or skops file of a fitted estimator with predict."""

    code = "invalid_artifact"
    http_status = 422


class IncompatibleArtifactError(RegistryError):
    """The artifact was pickled with another scikit-learn version than this runtime's."""

    code = "incompatible_artifact"
    http_status = 422

    def __init__(self, message: str, pickled_with: str | None = None) -> None:
        super().__init__(message)
        self.pickled_with = pickled_with  # the version the validator read, when it could


class RuntimeUnsupportedError(RegistryError):
    """No runtime line this registry serves can load the artifact (registry/lines.py)."""

    code = "runtime_unsupported"
    http_status = 422


class InvalidInputError(RegistryError):
    """Prediction input that does not fit the model (feature count, values)."""

    code = "invalid_input"
    http_status = 422


class ModelNotFoundError(RegistryError):
    code = "model_not_found"
    http_status = 404


class VersionNotFoundError(RegistryError):
    code = "version_not_found"
    http_status = 404


class ObjectNotFoundError(RegistryError):
    """A store key that does not exist; the registry turns it into a 404 of its own kind."""

    code = "object_not_found"
    http_status = 404


class IntegrityError(RegistryError):
    """Stored bytes do not match the manifest's sha256; they are never unpickled."""

    code = "integrity_check_failed"
    http_status = 500


class StoreUnavailableError(RegistryError):
    """The object store failed or could not be reached; the request may be retried."""

    code = "store_unavailable"
    http_status = 503


class VersionAllocationError(RegistryError):
    """Too many concurrent registrations took every version this request tried."""

    code = "version_conflict"
    http_status = 503


class UploadsUnavailableError(RegistryError):
    """The store cannot hand out upload URLs (a directory store outside the local API)."""

    code = "uploads_unavailable"
    http_status = 501


class InvalidRequestError(RegistryError):
    """A request whose parts contradict each other, such as a version and an alias."""

    code = "invalid_request"
    http_status = 422


class AliasNotFoundError(RegistryError):
    code = "alias_not_found"
    http_status = 404


class ReferenceNotFoundError(RegistryError):
    code = "reference_not_found"
    http_status = 404


class UploadNotFoundError(RegistryError):
    code = "upload_not_found"
    http_status = 404


class VersionArchivedError(RegistryError):
    """The version exists but was archived: it is listed and never served."""

    code = "version_archived"
    http_status = 410


class VersionInUseError(RegistryError):
    """Archiving a version an alias points to; move or remove the alias first."""

    code = "version_in_use"
    http_status = 409


class ArtifactTooLargeError(RegistryError):
    code = "artifact_too_large"
    http_status = 413


class TooManyInstancesError(RegistryError):
    code = "too_many_instances"
    http_status = 413


class ProbabilitiesUnavailableError(RegistryError):
    """The model has no predict_proba."""

    code = "probabilities_unavailable"
    http_status = 422


class StateConflictError(RegistryError):
    """A compare-and-swap update kept losing to concurrent writers; retry."""

    code = "concurrent_update"
    http_status = 503


class RegistrationInProgressError(RegistryError):
    """The same bytes are being registered by another request right now; retry."""

    code = "registration_in_progress"
    http_status = 503


class PickleRefusedError(RegistryError):
    """This deployment will not load this pickle: joblib artifacts are refused
    (PICKLE_ARTIFACTS=deny), or one that converts to no skops copy (convert)."""

    code = "pickle_refused"
    http_status = 422


class ObjectTooLargeError(RegistryError):
    """A bounded read found more bytes than its limit; callers say what the limit was for."""

    code = "object_too_large"
    http_status = 413


class ValidatorUnavailableError(RegistryError):
    """The validator function could not be invoked (throttled, unreachable); retry."""

    code = "validator_unavailable"
    http_status = 503


class ModelBeingDeletedError(RegistryError):
    """The model is being deleted; nothing can be registered under its name until that ends."""

    code = "model_being_deleted"
    http_status = 409


class ArtifactNotRegisteredError(RegistryError):
    """A registration by sha256 names bytes no active version holds: send the bytes."""

    code = "artifact_not_registered"
    http_status = 404


class VersionNeedsConversionError(RegistryError):
    """A joblib version registered before the registry served only skops and compiled copies:
    it is served once `model-registry convert` gave it one (or under allow-unsafe)."""

    code = "version_needs_conversion"
    http_status = 409


class BatchJobNotFoundError(RegistryError):
    code = "batch_job_not_found"
    http_status = 404


class BatchInputError(RegistryError):
    """A batch job's input or output location that cannot be used: missing, empty, or
    without the model's columns. Rows that do not fit are not this: they go to errors files."""

    code = "invalid_batch_input"
    http_status = 422


class BatchJobConflictError(RegistryError):
    """A job id already names another job, or a run of it is still under way."""

    code = "batch_job_conflict"
    http_status = 409


class BatchJobsUnavailableError(RegistryError):
    """This deployment runs no batch jobs (no state machine, no local runner)."""

    code = "batch_jobs_unavailable"
    http_status = 501
