"""Register, resolve and load model versions over an object store.

Layout under the store (keys are relative to REGISTRY_URI):
    models/<name>/artifacts/<sha256>.joblib   the bytes, content-addressed
    models/<name>/versions/<0000000001>.json  one manifest per version

Registration writes the artifact first and then creates the manifest with an
atomic create-if-absent (S3 If-None-Match: *). The manifest is both the
version allocation and the commit point: a version exists exactly when its
manifest does, and its artifact is already complete by then.
"""

from datetime import UTC, datetime
from typing import Any

from registry.artifacts import describe_estimator, load_estimator, runtime_versions, sha256_hex
from registry.errors import (
    IntegrityError,
    ModelNotFoundError,
    ObjectNotFoundError,
    VersionAllocationError,
    VersionNotFoundError,
)
from registry.manifest import (
    MAX_VERSION,
    ModelManifest,
    artifact_key,
    manifest_key,
    validate_model_name,
    version_from_manifest_key,
    versions_prefix,
)
from registry.store.base import ObjectStore

# How many taken version numbers one registration steps over before it lists
# the versions again; together these bound its work under heavy contention.
CREATE_ATTEMPTS_PER_LISTING = 32
LISTINGS_PER_REGISTRATION = 8


class ModelRegistry:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def list_versions(self, name: str) -> list[int]:
        keys = self.store.list_keys(versions_prefix(name))
        return sorted(v for v in map(version_from_manifest_key, keys) if v is not None)

    def latest_version(self, name: str) -> int:
        versions = self.list_versions(name)
        if not versions:
            raise ModelNotFoundError(f"no model named {name!r}")
        return versions[-1]

    def register(
        self,
        name: str,
        artifact: bytes,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> ModelManifest:
        """Validate the bytes, store them and commit the next free version."""
        validate_model_name(name)
        info = describe_estimator(load_estimator(artifact))
        digest = sha256_hex(artifact)
        key = artifact_key(name, digest)
        self.store.put(key, artifact)

        def manifest_for(version: int) -> ModelManifest:
            return ModelManifest(
                name=name,
                version=version,
                artifact_key=key,
                sha256=digest,
                size_bytes=len(artifact),
                created_at=datetime.now(UTC),
                estimator_class=info.estimator_class,
                n_features_in=info.n_features_in,
                feature_names=info.feature_names,
                classes=info.classes,
                runtime=runtime_versions(),
                description=description,
                tags=tags or {},
            )

        for _ in range(LISTINGS_PER_REGISTRATION):
            existing = self.list_versions(name)
            candidate = existing[-1] + 1 if existing else 1
            for version in range(candidate, candidate + CREATE_ATTEMPTS_PER_LISTING):
                if version > MAX_VERSION:
                    raise VersionAllocationError(f"model {name!r} has no version numbers left")
                manifest = manifest_for(version)
                if self.store.create(manifest_key(name, version), _encode(manifest)):
                    return manifest
        raise VersionAllocationError(
            f"too many concurrent registrations of {name!r}; retry the request"
        )

    def get_manifest(self, name: str, version: int) -> ModelManifest:
        try:
            data = self.store.get(manifest_key(name, version))
        except ObjectNotFoundError as exc:
            if not self.list_versions(name):
                raise ModelNotFoundError(f"no model named {name!r}") from exc
            raise VersionNotFoundError(f"model {name!r} has no version {version}") from exc
        return ModelManifest.model_validate_json(data)

    def resolve(self, name: str, version: int | None = None) -> ModelManifest:
        """The manifest of a version, or of the latest one when version is None."""
        validate_model_name(name)
        return self.get_manifest(
            name, version if version is not None else self.latest_version(name)
        )

    def read_artifact(self, manifest: ModelManifest) -> bytes:
        """The artifact's bytes, refused unless they match the manifest's sha256."""
        if manifest.artifact_key != artifact_key(manifest.name, manifest.sha256):
            raise IntegrityError(
                f"manifest of {manifest.name!r} version {manifest.version} points at an "
                "unexpected object; it was not loaded"
            )
        try:
            data = self.store.get(manifest.artifact_key)
        except ObjectNotFoundError as exc:
            raise IntegrityError(
                f"artifact of {manifest.name!r} version {manifest.version} is missing"
            ) from exc
        if sha256_hex(data) != manifest.sha256:
            raise IntegrityError(
                f"artifact of {manifest.name!r} version {manifest.version} does not match its "
                "sha256; it was not loaded"
            )
        return data

    def load_model(self, manifest: ModelManifest) -> Any:
        return load_estimator(self.read_artifact(manifest))


def _encode(manifest: ModelManifest) -> bytes:
    return manifest.model_dump_json(indent=2).encode()
