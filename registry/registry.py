"""Register, list, alias, archive and load model versions over an object store.

Registration writes the artifact first and then creates the manifest with an
atomic create-if-absent (S3 If-None-Match: *). The manifest is both the
version allocation and the commit point: a version exists exactly when its
manifest does, and its artifact is complete by then. Manifests never change;
aliases and archived versions live in one small state object per model that
is only replaced by compare-and-swap (S3 If-Match on its ETag).
"""

import contextlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from registry.artifacts import (
    EstimatorInfo,
    describe_estimator,
    load_estimator,
    runtime_versions,
    serving_bytes,
    sha256_hex,
)
from registry.errors import (
    AliasNotFoundError,
    ArtifactTooLargeError,
    IntegrityError,
    InvalidRequestError,
    ModelNotFoundError,
    ObjectNotFoundError,
    RegistrationInProgressError,
    RegistryError,
    StateConflictError,
    UploadNotFoundError,
    VersionAllocationError,
    VersionArchivedError,
    VersionInUseError,
    VersionNotFoundError,
)
from registry.manifest import (
    MAX_VERSION,
    UPLOAD_KEY_PATTERN,
    ModelManifest,
    ModelState,
    ShaClaim,
    VersionStatus,
    artifact_key,
    claim_key,
    manifest_key,
    parse_version_key,
    serving_key,
    state_key,
    upload_key,
    validate_model_name,
    validate_name,
    versions_prefix,
)
from registry.observability import logger
from registry.store.base import ObjectStore

# How many taken version numbers one registration steps over before it lists
# the versions again; together these bound its work under heavy contention.
CREATE_ATTEMPTS_PER_LISTING = 32
LISTINGS_PER_REGISTRATION = 8
STATE_UPDATE_ATTEMPTS = 20
# A registration of identical bytes waits this long for a concurrent one to finish;
# a claim older than CLAIM_STALE_AFTER belongs to a registration that died.
CLAIM_WAIT_SECONDS = 10.0
CLAIM_STALE_AFTER = timedelta(seconds=60)
DEFAULT_ALIAS = "default"
DEFAULT_MAX_ARTIFACT_BYTES = 128 * 1024 * 1024
DEFAULT_UPLOAD_EXPIRES_IN = 900


@dataclass(frozen=True)
class VersionInfo:
    manifest: ModelManifest
    status: VersionStatus
    aliases: list[str]


@dataclass(frozen=True)
class Registration:
    info: VersionInfo
    created: bool
    # Version numbers another registration took first (each an S3 412) before this one won.
    conflict_retries: int = 0


@dataclass(frozen=True)
class ModelSummary:
    name: str
    latest_version: int | None
    version_count: int
    aliases: dict[str, int]


@dataclass(frozen=True)
class ModelVersions:
    name: str
    versions: list[VersionInfo]
    version_count: int
    latest_version: int | None
    aliases: dict[str, int]
    next_after: int | None


@dataclass(frozen=True)
class Upload:
    upload_url: str
    upload_key: str
    expires_in: int


class ModelRegistry:
    def __init__(
        self,
        store: ObjectStore,
        max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.max_artifact_bytes = max_artifact_bytes
        self.clock = clock

    # Reading -------------------------------------------------------------

    def list_versions(self, name: str) -> list[int]:
        keys = self.store.list_keys(versions_prefix(name))
        return sorted(parsed[1] for parsed in map(parse_version_key, keys) if parsed)

    def state(self, name: str) -> ModelState:
        try:
            return ModelState.model_validate_json(self.store.get(state_key(name)))
        except ObjectNotFoundError:
            return ModelState()

    def latest_active_version(self, name: str, state: ModelState | None = None) -> int:
        versions = self.list_versions(name)
        if not versions:
            raise ModelNotFoundError(f"no model named {name!r}")
        state = state if state is not None else self.state(name)
        active = [version for version in versions if version not in state.archived]
        if not active:
            raise VersionArchivedError(f"every version of {name!r} is archived")
        return active[-1]

    def list_models(self) -> list[ModelSummary]:
        """Every model with its latest active version, version count and aliases.

        One paginated listing of the version keys, and one state read per model:
        no manifest is read.
        """
        versions: dict[str, list[int]] = {}
        for parsed in map(parse_version_key, self.store.list_keys("models/")):
            if parsed:
                versions.setdefault(parsed[0], []).append(parsed[1])
        summaries = []
        for name, numbers in sorted(versions.items()):
            state = self.state(name)
            active = [number for number in numbers if number not in state.archived]
            summaries.append(
                ModelSummary(
                    name=name,
                    latest_version=max(active) if active else None,
                    version_count=len(numbers),
                    aliases=dict(sorted(state.aliases.items())),
                )
            )
        return summaries

    def describe_model(self, name: str, limit: int = 100, after: int = 0) -> ModelVersions:
        """One page of a model's versions (oldest first, those above `after`) and its aliases."""
        validate_model_name(name)
        numbers = self.list_versions(name)
        if not numbers:
            raise ModelNotFoundError(f"no model named {name!r}")
        state = self.state(name)
        page = [number for number in numbers if number > after][:limit]
        active = [number for number in numbers if number not in state.archived]
        return ModelVersions(
            name=name,
            versions=[self._info(self.get_manifest(name, number), state) for number in page],
            version_count=len(numbers),
            latest_version=active[-1] if active else None,
            aliases=dict(sorted(state.aliases.items())),
            next_after=page[-1] if page and page[-1] != numbers[-1] else None,
        )

    def get_manifest(self, name: str, version: int) -> ModelManifest:
        validate_model_name(name)
        try:
            data = self.store.get(manifest_key(name, version))
        except ObjectNotFoundError as exc:
            if not self.list_versions(name):
                raise ModelNotFoundError(f"no model named {name!r}") from exc
            raise VersionNotFoundError(f"model {name!r} has no version {version}") from exc
        return ModelManifest.model_validate_json(data)

    def get_version(self, name: str, version: int) -> VersionInfo:
        manifest = self.get_manifest(name, version)
        return self._info(manifest, self.state(name))

    def _info(self, manifest: ModelManifest, state: ModelState) -> VersionInfo:
        return VersionInfo(
            manifest, state.status(manifest.version), state.aliases_of(manifest.version)
        )

    def resolve_version(
        self, name: str, state: ModelState, version: int | None, alias: str | None
    ) -> int:
        """The version a request means: explicit, an alias, else 'default', else latest active.

        Raises VersionArchivedError for an archived version; existence of an
        explicit version is checked when its manifest is read.
        """
        if version is not None and alias is not None:
            raise InvalidRequestError("send either version or alias, not both")
        if alias is not None:
            validate_name(alias, "alias")
            if alias not in state.aliases:
                if not self.list_versions(name):
                    raise ModelNotFoundError(f"no model named {name!r}")
                raise AliasNotFoundError(f"model {name!r} has no alias {alias!r}")
            version = state.aliases[alias]
        elif version is None:
            version = state.aliases.get(DEFAULT_ALIAS) or self.latest_active_version(name, state)
        if version in state.archived:
            raise VersionArchivedError(f"version {version} of {name!r} is archived")
        return version

    def resolve(
        self, name: str, version: int | None = None, alias: str | None = None
    ) -> ModelManifest:
        validate_model_name(name)
        return self.get_manifest(name, self.resolve_version(name, self.state(name), version, alias))

    def read_artifact(self, manifest: ModelManifest) -> bytes:
        """The artifact's bytes, refused unless they match the manifest's sha256."""
        expected = artifact_key(manifest.name, manifest.sha256)
        return self._read_verified(manifest, manifest.artifact_key, expected, manifest.sha256)

    def _read_verified(
        self, manifest: ModelManifest, key: str, expected_key: str, sha256: str
    ) -> bytes:
        where = f"{manifest.name!r} version {manifest.version}"
        if key != expected_key:
            raise IntegrityError(
                f"manifest of {where} points at an unexpected object; it was not loaded"
            )
        try:
            data = self.store.get(key)
        except ObjectNotFoundError as exc:
            raise IntegrityError(f"artifact of {where} is missing") from exc
        if sha256_hex(data) != sha256:
            raise IntegrityError(
                f"artifact of {where} does not match its sha256; it was not loaded"
            )
        return data

    def load_model(self, manifest: ModelManifest) -> Any:
        """The estimator, from the serving copy when the version has one, checked first."""
        if manifest.serving_key is None or manifest.serving_sha256 is None:
            return load_estimator(self.read_artifact(manifest))
        expected = serving_key(manifest.name, manifest.serving_sha256)
        data = self._read_verified(
            manifest, manifest.serving_key, expected, manifest.serving_sha256
        )
        return load_estimator(data, serving_copy=True)

    # Registering ---------------------------------------------------------

    def create_upload(self, name: str, expires_in: int = DEFAULT_UPLOAD_EXPIRES_IN) -> Upload:
        key = upload_key(name, secrets.token_hex(16))
        return Upload(self.store.presign_put(key, expires_in), key, expires_in)

    def register_upload(self, name: str, key: str, **metadata: Any) -> Registration:
        """Register bytes a client PUT to an upload URL of this model."""
        validate_model_name(name)
        if not re.fullmatch(UPLOAD_KEY_PATTERN, key) or not key.startswith(f"uploads/{name}/"):
            raise UploadNotFoundError(f"upload {key[:120]!r} does not belong to model {name!r}")
        try:
            size = self.store.size(key)
        except ObjectNotFoundError as exc:
            raise UploadNotFoundError(f"nothing was uploaded to {key!r}") from exc
        self._check_size(size)
        return self.register(name, self.store.get(key), **metadata)

    def _check_size(self, size: int) -> None:
        if size > self.max_artifact_bytes:
            raise ArtifactTooLargeError(
                f"artifact is {size} bytes; the registry accepts at most {self.max_artifact_bytes}"
            )

    def register(
        self,
        name: str,
        artifact: bytes,
        description: str = "",
        tags: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
        registered_by: str | None = None,
    ) -> Registration:
        """Validate the bytes and commit them as the next version.

        Bytes identical to an active version of the model return that version
        (created=False) instead, also when identical registrations race.
        """
        validate_model_name(name)
        self._check_size(len(artifact))
        estimator = load_estimator(artifact)
        info = describe_estimator(estimator)
        digest = sha256_hex(artifact)
        claim = self._claim(name, digest)
        if isinstance(claim, VersionInfo):
            return Registration(claim, created=False)
        metadata = {
            "description": description,
            "tags": tags or {},
            "metrics": metrics or {},
            "registered_by": registered_by,
        }

        try:
            manifest, conflict_retries = self._store_version(
                name, artifact, digest, estimator, info, **metadata
            )
        except BaseException:
            self._release(name, digest, claim)
            raise
        try:
            self.store.put(
                claim_key(name, digest),
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
        estimator: Any,
        info: EstimatorInfo,
        **metadata: Any,
    ) -> tuple[ModelManifest, int]:
        """Write the artifact and its serving copy, then commit the next free version.

        Returns the manifest and how many taken versions were stepped over.
        """
        key = artifact_key(name, digest)
        self.store.put(key, artifact)
        serving = serving_bytes(estimator)
        serving_digest = sha256_hex(serving)
        self.store.put(serving_key(name, serving_digest), serving)
        manifest_fields = {
            "name": name,
            "artifact_key": key,
            "sha256": digest,
            "size_bytes": len(artifact),
            "estimator_class": info.estimator_class,
            "n_features_in": info.n_features_in,
            "feature_names": info.feature_names,
            "classes": info.classes,
            "has_predict_proba": info.has_predict_proba,
            "runtime": runtime_versions(),
            "serving_key": serving_key(name, serving_digest),
            "serving_sha256": serving_digest,
            **metadata,
        }
        return self._commit_next_version(name, manifest_fields)

    def _release(self, name: str, digest: str, claim: ShaClaim) -> None:
        """Best effort after a failed registration: date the claim so others take over at once."""
        released = claim.model_copy(update={"claimed_at": datetime(1970, 1, 1, tzinfo=UTC)})
        with contextlib.suppress(RegistryError):
            self.store.put(claim_key(name, digest), _encode(released))

    def _commit_next_version(self, name: str, fields: dict[str, Any]) -> tuple[ModelManifest, int]:
        conflicts = 0
        for _ in range(LISTINGS_PER_REGISTRATION):
            existing = self.list_versions(name)
            candidate = existing[-1] + 1 if existing else 1
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

    def _claim(self, name: str, digest: str) -> ShaClaim | VersionInfo:
        """Become the one registration of these bytes, or find the version that holds them."""
        key = claim_key(name, digest)
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
                if existing is not None:
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
            existing = self.get_version(name, version)
        except (ModelNotFoundError, VersionNotFoundError):
            return None
        return existing if existing.status is VersionStatus.ACTIVE else None

    # Aliases and archive ---------------------------------------------------

    def _update_state(self, name: str, change: Callable[[ModelState], ModelState]) -> ModelState:
        """Apply change to the model's state by compare-and-swap, retrying lost races."""
        key = state_key(name)
        for _ in range(STATE_UPDATE_ATTEMPTS):
            try:
                current = self.store.get_versioned(key)
            except ObjectNotFoundError:
                new_state = change(ModelState())
                if self.store.create(key, _encode(new_state)):
                    return new_state
                continue
            state = ModelState.model_validate_json(current.data)
            new_state = change(state)
            if new_state == state or self.store.replace(key, _encode(new_state), current.etag):
                return new_state
        raise StateConflictError(f"too many concurrent updates of {name!r}; retry the request")

    def set_alias(self, name: str, alias: str, version: int) -> ModelState:
        validate_name(alias, "alias")
        self.get_manifest(name, version)

        def point(state: ModelState) -> ModelState:
            if version in state.archived:
                raise VersionArchivedError(f"version {version} of {name!r} is archived")
            return state.model_copy(update={"aliases": {**state.aliases, alias: version}})

        return self._update_state(name, point)

    def delete_alias(self, name: str, alias: str) -> int:
        """Remove the alias; returns the version it pointed to."""
        validate_name(alias, "alias")
        removed: list[int] = []

        def drop(state: ModelState) -> ModelState:
            if alias not in state.aliases:
                if not self.list_versions(name):
                    raise ModelNotFoundError(f"no model named {name!r}")
                raise AliasNotFoundError(f"model {name!r} has no alias {alias!r}")
            removed[:] = [state.aliases[alias]]
            aliases = {key: value for key, value in state.aliases.items() if key != alias}
            return state.model_copy(update={"aliases": aliases})

        self._update_state(name, drop)
        return removed[0]

    def archive(self, name: str, version: int) -> VersionInfo:
        """Archive a version: listed as archived, never served, its number never reused."""
        manifest = self.get_manifest(name, version)

        def mark(state: ModelState) -> ModelState:
            if aliases := state.aliases_of(version):
                raise VersionInUseError(
                    f"version {version} of {name!r} is the target of alias "
                    f"{', '.join(map(repr, aliases))}; move or remove it first"
                )
            if version in state.archived:
                return state
            return state.model_copy(update={"archived": sorted([*state.archived, version])})

        return self._info(manifest, self._update_state(name, mark))


def _encode(model: Any) -> bytes:
    return bytes(model.model_dump_json(indent=2).encode())
