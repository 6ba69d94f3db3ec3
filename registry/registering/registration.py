"""Registering a version: validate elsewhere, claim, store, commit, release.

1. Validate: the bytes go to the validator function (registry/registering/validator.py), which
   loads them where nothing can be written. Nothing here deserialises them.
2. Claim: a sha256 claim object makes this the one registration of these bytes, or
   finds the version that already holds them (retry safety).
3. Store: the artifact and the validator's serving copy, each under the sha256
   register computed itself, each created once (If-None-Match: *).
4. Commit: the manifest, created with If-None-Match: * at the next free version
   number. It is both the version allocation and the commit point: a version exists
   exactly when its manifest does, and its objects are complete by then.
5. Release: the claim records the version (or, on failure, is dated so that a retry
   takes it over at once).
"""

import contextlib
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from registry.config import DEFAULT_MAX_ARTIFACT_BYTES, DEFAULT_UPLOAD_EXPIRES_IN, PicklePolicy
from registry.errors import (
    ArtifactNotRegisteredError,
    ArtifactTooLargeError,
    IncompatibleArtifactError,
    IntegrityError,
    InvalidArtifactError,
    InvalidInputError,
    ModelBeingDeletedError,
    ModelNotFoundError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    RegistrationInProgressError,
    RegistryError,
    RuntimeUnsupportedError,
    UploadNotFoundError,
    VersionAllocationError,
    VersionNotFoundError,
)
from registry.inputs import RequestRows, check_rows, complete_signature
from registry.lines import Lines, artifact_sklearn_version, runtime_minor
from registry.manifest import (
    MAX_MANIFEST_BYTES,
    MAX_VERSION,
    PICKLE_FREE_SERVING,
    UPLOAD_KEY_PATTERN,
    ArtifactFormat,
    InputSignature,
    ModelManifest,
    ServingCopy,
    ServingFormat,
    ShaClaim,
    VersionStatus,
    artifact_format_of,
    artifact_key,
    claim_key,
    manifest_key,
    serving_key,
    sha256_hex,
    upload_key,
    validate_model_name,
)
from registry.observability import logger
from registry.registering.validator import ValidatedArtifact, Validator
from registry.registry import ModelRegistry, VersionInfo
from registry.store.base import ObjectStore
from registry.validation import (
    EstimatorDescription,
    ExampleFailure,
    Rejection,
    RejectionReason,
    rejection_error,
)

# How many taken version numbers one registration steps over before it lists
# the versions again; together these bound its work under heavy contention.
CREATE_ATTEMPTS_PER_LISTING = 32
LISTINGS_PER_REGISTRATION = 8
# A registration of identical bytes waits this long for a concurrent one to finish;
# a claim older than CLAIM_STALE_AFTER belongs to a registration that died.
CLAIM_WAIT_SECONDS = 10.0
CLAIM_STALE_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class Registration:
    info: VersionInfo
    created: bool
    # Version numbers another registration took first (each an S3 412) before this one won.
    conflict_retries: int = 0
    # What the caller should know: identical bytes kept the version's own metadata.
    note: str | None = None


@dataclass(frozen=True)
class Upload:
    upload_url: str
    upload_key: str
    expires_in: int


class Registrar:
    """Turns caller bytes into a committed version, without ever loading them."""

    def __init__(
        self,
        registry: ModelRegistry,
        validator: Validator,
        max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
        pickle_policy: PicklePolicy = PicklePolicy.CONVERT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        line_validators: Mapping[str, Validator] | None = None,
    ) -> None:
        """validator: this runtime's own line's; line_validators: an older line's each, by
        its minor ("1.8"), for artifacts saved with that line's scikit-learn."""
        self.registry = registry
        self.validator = validator
        self.max_artifact_bytes = max_artifact_bytes
        self.pickle_policy = pickle_policy
        self.clock = clock
        self.line_validators = dict(line_validators or {})
        self.lines = Lines(runtime_minor(), tuple(self.line_validators))

    def _validator_for(
        self, artifact: bytes, format: ArtifactFormat, runtime: str | None
    ) -> tuple[str, Validator]:
        """The line the artifact needs, and its validator; a 422 naming the lines served."""
        needs = artifact_sklearn_version(artifact, format is ArtifactFormat.SKOPS, runtime)
        line = self.lines.line_for(needs)
        if line is None:
            served = self.lines.served
            lines = f"the lines {self.lines.listed()}" if len(served) > 1 else f"line {served[0]}"
            which = "one of them" if len(served) > 1 else f"scikit-learn {served[0]}"
            raise RuntimeUnsupportedError(
                f"the model was saved with scikit-learn {needs}; this registry serves {lines}: "
                f"save it again with {which} (pip install 'scikit-learn=={self.lines.newest}.*')"
            )
        return line, self.line_validators.get(line, self.validator)

    @property
    def store(self) -> ObjectStore:
        return self.registry.store

    def create_upload(self, name: str, expires_in: int = DEFAULT_UPLOAD_EXPIRES_IN) -> Upload:
        key = upload_key(name, secrets.token_hex(16))
        return Upload(self.store.presign_put(key, expires_in), key, expires_in)

    def register_upload(self, name: str, key: str, **metadata: Any) -> Registration:
        """Register bytes a client PUT to an upload URL of this model.

        The size limit holds for the bytes read: an upload swapped for a larger one after
        any earlier check is still refused, and never read whole into memory.
        """
        validate_model_name(name)
        if not re.fullmatch(UPLOAD_KEY_PATTERN, key) or not key.startswith(f"uploads/{name}/"):
            raise UploadNotFoundError(f"upload {key[:120]!r} does not belong to model {name!r}")
        try:
            artifact = self.store.get(key, max_bytes=self.max_artifact_bytes)
        except ObjectNotFoundError as exc:
            raise UploadNotFoundError(f"nothing was uploaded to {key!r}") from exc
        except ObjectTooLargeError as exc:
            raise self._too_large() from exc
        registration = self.register(name, artifact, **metadata)
        # Registered: the upload has served its purpose. Kept when anything failed, so that
        # a retry can send the same upload_key (the uploads rule expires it in S3).
        with contextlib.suppress(RegistryError):
            self.store.delete([key])
        return registration

    def register_known(
        self,
        name: str,
        digest: str,
        description: str = "",
        tags: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
        input_example: list[Any] | None = None,
        **_: Any,
    ) -> Registration:
        """The active version that already holds these bytes (by sha256), with no upload.

        Raises ArtifactNotRegisteredError when there is none: send the bytes instead.
        """
        validate_model_name(name)
        identity = digest if input_example is None else _with_example(digest, input_example)
        try:
            claim = ShaClaim.model_validate_json(self.store.get(claim_key(name, identity)))
        except ObjectNotFoundError:
            claim = None
        existing = None
        if claim is not None and claim.version is not None:
            existing = self._existing_active(name, claim.version)
        if (
            existing is None
            or existing.manifest.sha256 != digest
            or existing.manifest.input_example != input_example
        ):
            raise ArtifactNotRegisteredError(
                f"no active version of {name!r} holds bytes with sha256 {digest[:12]}...; "
                "send them as artifact or upload_key"
            )
        return Registration(
            existing, created=False, note=_metadata_kept(existing, description, tags, metrics)
        )

    def convert(self, name: str, version: int) -> tuple[VersionInfo, bool]:
        """Give a joblib version registered before predict stopped unpickling the skops (or
        compiled) serving copy the validator makes of it now; and whether it needed one.

        Its manifest is written once, so the copy is recorded in the model's state (by
        compare-and-swap); predict reads it there within ALIAS_TTL_SECONDS. Raises the
        validator's refusal (NOT_CONVERTIBLE, with the types it would need trusted) when the
        model has no such copy.
        """
        info = self.registry.get_version(name, version)
        manifest = info.manifest
        if manifest.format is ArtifactFormat.SKOPS or _served_without_pickle(info):
            return info, False
        if self.pickle_policy is PicklePolicy.DENY:
            raise rejection_error(Rejection(reason=RejectionReason.PICKLE_REFUSED))
        artifact = self.registry.read_artifact(manifest)  # checked against its sha256
        validated = self.validator.validate(
            name, artifact, ArtifactFormat.JOBLIB, manifest.input_example
        )
        made, made_format = validated.serving_copy, validated.serving_format
        if made is None or made_format not in PICKLE_FREE_SERVING:
            raise rejection_error(Rejection(reason=RejectionReason.NOT_CONVERTIBLE))
        digest = sha256_hex(made)
        copy = ServingCopy(
            key=serving_key(name, digest, made_format),
            sha256=digest,
            format=made_format,
            loaded_bytes=validated.estimator.loaded_bytes,
            converted_at=self.clock(),
        )
        self._create_once(copy.key, made)
        self.registry.update_state(
            name,
            lambda state: state.model_copy(update={"serving": {**state.serving, version: copy}}),
        )
        return self.registry.get_version(name, version), True

    def _too_large(self, size: int | None = None) -> ArtifactTooLargeError:
        what = f"{size} bytes" if size is not None else f"over {self.max_artifact_bytes} bytes"
        return ArtifactTooLargeError(
            f"the artifact is {what}; the registry accepts at most {self.max_artifact_bytes}"
        )

    def register(
        self,
        name: str,
        artifact: bytes,
        description: str = "",
        tags: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
        registered_by: str | None = None,
        input_example: list[Any] | None = None,
        runtime: str | None = None,
    ) -> Registration:
        """Validate the bytes, on the line they need, and commit them as the next version.

        Bytes identical to an active version of the model return that version
        (created=False) instead, also when identical registrations race.
        An input_example (a list of rows) completes the signature, and the model must
        predict on it, or the registration is refused. runtime: the scikit-learn the
        registrant saved a skops file with (a pickle names its own).
        """
        validate_model_name(name)
        if len(artifact) > self.max_artifact_bytes:
            raise self._too_large(len(artifact))
        format = artifact_format_of(artifact)
        if format is ArtifactFormat.JOBLIB and self.pickle_policy is PicklePolicy.DENY:
            raise rejection_error(Rejection(reason=RejectionReason.PICKLE_REFUSED))
        line, validator = self._validator_for(artifact, format, runtime)
        try:
            validated = validator.validate(name, artifact, format, input_example)
        except IncompatibleArtifactError as refused:
            # A file that hid its version (a compressed joblib file) from the look above:
            # the validator loaded it and read the version, so its line validates it.
            found = self.lines.line_for(refused.pickled_with) if refused.pickled_with else None
            if found is None or found == line:
                raise
            validator = self.line_validators.get(found, self.validator)
            validated = validator.validate(name, artifact, format, input_example)
        signature = validated.estimator.signature
        if input_example is not None:
            signature = _checked_example(validated.estimator, input_example)
        digest = sha256_hex(artifact)
        # One registration of these bytes with this example: the same bytes sent with
        # another input_example (a completed signature) make a version of their own.
        identity = digest if input_example is None else _with_example(digest, input_example)
        claim = self._claim(name, identity, digest, input_example)
        if isinstance(claim, VersionInfo):
            return Registration(
                claim, created=False, note=_metadata_kept(claim, description, tags, metrics)
            )
        # After the claim, so that a delete of the model either refuses this registration
        # here or waits for it to finish (registry/registering/deletion.py).
        state = self.registry.state(name)
        if state.deleting:
            self._release(name, identity, claim)
            raise ModelBeingDeletedError(
                f"model {name!r} is being deleted; register it again once the delete is "
                "done (send the delete again if it was cut short)"
            )
        metadata = {
            "description": description,
            "tags": tags or {},
            "metrics": metrics or {},
            "registered_by": registered_by,
            "signature": signature,
            "input_example": input_example,
        }
        try:
            manifest, conflict_retries = self._store_version(
                name, artifact, digest, format, validated, metadata, state.deleted_through
            )
        except BaseException:
            self._release(name, identity, claim)
            raise
        try:
            self.store.put(
                claim_key(name, identity),
                _encode(claim.model_copy(update={"version": manifest.version})),
            )
        except RegistryError as exc:
            # The version is committed: answer with it. The claim stays pending, so an
            # identical registration waits (503) until the claim is stale, then makes a new one.
            logger.warning(
                "registered, but the sha256 claim was not updated",
                extra={"model": name, "version": manifest.version, "error_code": exc.code},
            )
        return Registration(VersionInfo(manifest, VersionStatus.ACTIVE, []), True, conflict_retries)

    def _store_version(
        self,
        name: str,
        artifact: bytes,
        digest: str,
        format: ArtifactFormat,
        validated: ValidatedArtifact,
        metadata: dict[str, Any],
        deleted_through: int = 0,
    ) -> tuple[ModelManifest, int]:
        """Write the artifact and its serving copy once each, then commit the next free version.

        Returns the manifest and how many taken versions were stepped over.
        """
        key = artifact_key(name, digest, format)
        serving_copy, serving_format = validated.serving_copy, validated.serving_format
        if not _acceptable_serving(format, serving_format, self.pickle_policy):
            serving_copy = None
        unsafe = self.pickle_policy is PicklePolicy.ALLOW_UNSAFE
        if format is ArtifactFormat.JOBLIB and serving_copy is None and not unsafe:
            # The validator said it converted, but sent nothing predict may load.
            raise rejection_error(Rejection(reason=RejectionReason.NOT_CONVERTIBLE))
        serving: dict[str, Any] = {}
        if serving_copy is not None and serving_format is not None:
            # A compiled form is plain arrays, loaded without unpickling: any artifact's.
            serving_digest = sha256_hex(serving_copy)
            serving = {
                "serving_key": serving_key(name, serving_digest, serving_format),
                "serving_sha256": serving_digest,
                "serving_format": serving_format,
            }
        estimator = validated.estimator
        manifest_fields = {
            "name": name,
            "artifact_key": key,
            "sha256": digest,
            "size_bytes": len(artifact),
            "format": format,
            "estimator_class": estimator.estimator_class,
            "n_features_in": estimator.n_features_in,
            "feature_names": estimator.feature_names,
            "classes": estimator.classes,
            "output_classes": estimator.output_classes,
            "has_predict_proba": estimator.has_predict_proba,
            "runtime": validated.runtime,
            "loaded_bytes": estimator.loaded_bytes,
            "check": validated.check,
            **serving,
            **metadata,
        }
        self._check_manifest(manifest_fields)
        self._create_once(key, artifact)
        if serving_copy is not None:
            self._create_once(serving["serving_key"], serving_copy)
        return self._commit_next_version(name, manifest_fields, deleted_through)

    def _check_manifest(self, fields: dict[str, Any]) -> None:
        """Before any write: the manifest will read back as written, and is not too large."""
        trial = _encode(ModelManifest(version=MAX_VERSION, created_at=self.clock(), **fields))
        if len(trial) > MAX_MANIFEST_BYTES:
            raise InvalidArtifactError(
                f"the model's description (feature names, classes) takes {len(trial)} bytes; "
                f"a version's manifest holds at most {MAX_MANIFEST_BYTES}"
            )
        ModelManifest.model_validate_json(trial)

    def _create_once(self, key: str, data: bytes) -> None:
        """Content-addressed objects are created, never replaced; the same bytes may be there."""
        if not self.store.create(key, data):
            raise IntegrityError(
                f"{key!r} holds other bytes than its sha256 says; nothing was written"
            )

    def _release(self, name: str, digest: str, claim: ShaClaim) -> None:
        """Best effort after a failed registration: date the claim so others take over at once."""
        released = claim.model_copy(update={"claimed_at": datetime(1970, 1, 1, tzinfo=UTC)})
        with contextlib.suppress(RegistryError):
            self.store.put(claim_key(name, digest), _encode(released))

    def _commit_next_version(
        self, name: str, fields: dict[str, Any], deleted_through: int
    ) -> tuple[ModelManifest, int]:
        """The next free number: above the listed versions, and a deleted model's numbers."""
        conflicts = 0
        for _ in range(LISTINGS_PER_REGISTRATION):
            existing = self.registry.list_versions(name)
            candidate = max(existing[-1] if existing else 0, deleted_through) + 1
            for version in range(candidate, candidate + CREATE_ATTEMPTS_PER_LISTING):
                if version > MAX_VERSION:
                    raise VersionAllocationError(f"model {name!r} has no version numbers left")
                manifest = ModelManifest(version=version, created_at=self.clock(), **fields)
                if self.store.create(manifest_key(name, version), _encode(manifest)):
                    return manifest, conflicts
                conflicts += 1
                logger.debug(
                    "version taken by a concurrent registration",
                    extra={"model": name, "version": version},
                )
        raise VersionAllocationError(
            f"too many concurrent registrations of {name!r}; retry the request"
        )

    def _claim(
        self, name: str, identity: str, digest: str, input_example: list[Any] | None
    ) -> ShaClaim | VersionInfo:
        """Become the one registration of these bytes (and example), or find their version."""
        key = claim_key(name, identity)
        deadline = time.monotonic() + CLAIM_WAIT_SECONDS
        pause = 0.05
        while time.monotonic() < deadline:
            mine = ShaClaim(token=secrets.token_hex(16), claimed_at=self.clock())
            if self.store.create(key, _encode(mine)):
                return mine
            try:
                current = self.store.get_versioned(key)
            except ObjectNotFoundError:
                continue
            claim = ShaClaim.model_validate_json(current.data)
            if claim.version is not None:
                existing = self._existing_active(name, claim.version)
                if (
                    existing is not None
                    and existing.manifest.sha256 == digest
                    and existing.manifest.input_example == input_example
                ):
                    return existing
                take_over = True  # that version was archived: register the bytes anew
            else:
                take_over = self.clock() - claim.claimed_at > CLAIM_STALE_AFTER
            if take_over and self.store.replace(key, _encode(mine), current.etag):
                return mine
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
        raise RegistrationInProgressError(
            f"the same bytes are being registered as {name!r} right now; retry"
        )

    def _existing_active(self, name: str, version: int) -> VersionInfo | None:
        try:
            existing = self.registry.get_version(name, version)
        except (ModelNotFoundError, VersionNotFoundError):
            return None
        return existing if existing.status is VersionStatus.ACTIVE else None


def _served_without_pickle(info: VersionInfo) -> bool:
    """Whether the version's serving copy (the manifest's, or one converted since) is one
    predict loads without unpickling."""
    copy = info.manifest.serving_copy
    return copy is not None and copy.format in PICKLE_FREE_SERVING


def _acceptable_serving(
    format: ArtifactFormat, serving_format: ServingFormat | None, policy: PicklePolicy
) -> bool:
    """Whether register keeps a serving copy of this kind for an artifact of this format.

    A compiled form is plain arrays, loaded without unpickling: any artifact's. A skops copy
    stands in only for a joblib artifact (a skops artifact serves itself), and a pickled
    one only for a joblib artifact under allow-unsafe (it is a pickle already).
    """
    match serving_format:
        case ServingFormat.COMPILED:
            return True
        case ServingFormat.SKOPS:
            return format is ArtifactFormat.JOBLIB
        case ServingFormat.PICKLE:
            return format is ArtifactFormat.JOBLIB and policy is PicklePolicy.ALLOW_UNSAFE
    return False


def _checked_example(estimator: EstimatorDescription, example: list[Any]) -> InputSignature:
    """The signature the example completes; a 422 when the model cannot take the example.

    Register checks the rows itself, against the signature the validator's schema let
    through, so what the caller reads is written here, not by the artifact.
    """
    signature = complete_signature(estimator.signature, example)
    try:
        check_rows(RequestRows(example), signature)
    except InvalidInputError as exc:
        raise InvalidInputError(f"input_example: {exc.message}") from None
    outcome = estimator.example
    if outcome is not None and outcome.failure is ExampleFailure.NOT_PREDICTED:
        raised = f"it raised {outcome.exception}" if outcome.exception else "it failed"
        raise InvalidInputError(
            f"the model could not predict on input_example ({raised}); nothing was registered: "
            "send rows with the columns and kinds of values the model was fitted on"
        )
    if outcome is not None:
        raise InvalidInputError(
            "input_example does not fit the model's input; nothing was registered: send rows "
            "with the columns and kinds of values the model was fitted on"
        )
    return signature


def _metadata_kept(
    existing: VersionInfo,
    description: str,
    tags: dict[str, str] | None,
    metrics: dict[str, float] | None,
) -> str | None:
    """What to tell a caller whose identical bytes came with other metadata; None if the same."""
    manifest = existing.manifest
    sent = (description, tags or {}, metrics or {})
    if sent == (manifest.description, manifest.tags, manifest.metrics):
        return None
    where = f"/models/{manifest.name}/versions/{manifest.version}"
    return (
        f"these bytes are already version {manifest.version} of {manifest.name!r}, so no "
        "version was created and its description, tags and metrics were kept as they are; "
        f"to change them, send PATCH {where} with the new values, or run: model-registry "
        f"edit {manifest.name} {manifest.version} --description ... --tag key=value"
    )


def _with_example(digest: str, example: list[Any]) -> str:
    """The identity of a registration of these bytes with this input_example."""
    canonical = json.dumps(example, sort_keys=True, separators=(",", ":"))
    return sha256_hex(f"{digest}:{canonical}".encode())


def _encode(model: Any) -> bytes:
    return bytes(model.model_dump_json(indent=2).encode())
