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
    """The uploaded bytes are not a joblib file of a fitted estimator with predict."""

    code = "invalid_artifact"
    http_status = 422


class IncompatibleArtifactError(RegistryError):
    """The artifact was pickled with another scikit-learn version than this runtime's."""

    code = "incompatible_artifact"
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
