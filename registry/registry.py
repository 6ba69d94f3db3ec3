"""List, read, alias, archive, restore and edit model versions over an object store.

Manifests never change (registry/registering/registration.py writes each once); aliases, archived
versions, edited metadata and a deleted model's last number live in one small state
object per model that is only replaced by compare-and-swap (S3 If-Match on its ETag).
Nothing here loads an artifact: read_artifact and read_serving_copy return bytes checked
against the manifest.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from registry.errors import (
    AliasNotFoundError,
    IntegrityError,
    InvalidRequestError,
    ModelNotFoundError,
    ObjectNotFoundError,
    StateConflictError,
    VersionArchivedError,
    VersionInUseError,
    VersionNotFoundError,
)
from registry.manifest import (
    AliasSplit,
    ModelManifest,
    ModelState,
    ServingCopy,
    VersionMetadata,
    VersionStatus,
    artifact_key,
    manifest_key,
    parse_version_key,
    reference_key,
    serving_key,
    sha256_hex,
    state_key,
    validate_model_name,
    validate_name,
    versions_prefix,
)
from registry.store.base import ObjectStore
from registry.traffic import MAX_SPLIT_VERSIONS, new_salt, version_for

STATE_UPDATE_ATTEMPTS = 20
DEFAULT_ALIAS = "default"


@dataclass(frozen=True)
class VersionInfo:
    """A version as callers see it: its manifest with any edited metadata applied."""

    manifest: ModelManifest
    status: VersionStatus
    aliases: list[str]
    edited_at: datetime | None = None
    edited_by: str | None = None
    # The runtime line that serves it (None: a compiled form, which every line serves).
    serving_line: str | None = None


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
    splits: dict[str, dict[int, int]]
    shadows: dict[str, int]


class ModelRegistry:
    def __init__(
        self, store: ObjectStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.store = store
        self.clock = clock

    # Reading -------------------------------------------------------------

    def list_versions(self, name: str, state: ModelState | None = None) -> list[int]:
        """The model's version numbers; with its state, leaving out those of a deleted model."""
        keys = self.store.list_keys(versions_prefix(name))
        numbers = sorted(parsed[1] for parsed in map(parse_version_key, keys) if parsed)
        return numbers if state is None else [n for n in numbers if state.exists(n)]

    def state(self, name: str) -> ModelState:
        try:
            return ModelState.model_validate_json(self.store.get(state_key(name)))
        except ObjectNotFoundError:
            return ModelState()

    def latest_active_version(self, name: str, state: ModelState | None = None) -> int:
        state = state if state is not None else self.state(name)
        versions = self.list_versions(name, state)
        if not versions:
            raise ModelNotFoundError(f"no model named {name!r}")
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
        for name, every_number in sorted(versions.items()):
            state = self.state(name)
            numbers = [number for number in every_number if state.exists(number)]
            if not numbers:
                continue
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
        state = self.state(name)
        numbers = self.list_versions(name, state)
        if not numbers:
            raise ModelNotFoundError(f"no model named {name!r}")
        page = [number for number in numbers if number > after][:limit]
        active = [number for number in numbers if number not in state.archived]
        return ModelVersions(
            name=name,
            versions=[self._info(self.get_manifest(name, number), state) for number in page],
            version_count=len(numbers),
            latest_version=active[-1] if active else None,
            aliases=dict(sorted(state.aliases.items())),
            next_after=page[-1] if page and page[-1] != numbers[-1] else None,
            splits={alias: split.weights for alias, split in sorted(state.splits.items())},
            shadows=dict(sorted(state.shadows.items())),
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
        state = self.state(name)
        self._check_exists(name, version, state)
        return self._info(self.get_manifest(name, version), state)

    def _check_exists(self, name: str, version: int, state: ModelState) -> None:
        if not state.exists(version):
            if not self.list_versions(name, state):
                raise ModelNotFoundError(f"no model named {name!r}")
            raise VersionNotFoundError(f"model {name!r} has no version {version}")

    def _info(self, manifest: ModelManifest, state: ModelState) -> VersionInfo:
        """The version as callers see it: edited metadata, and a serving copy converted since
        registration, in place of what the manifest says."""
        version = manifest.version
        edit = state.metadata.get(version)
        if edit is not None:
            manifest = manifest.model_copy(
                update={"description": edit.description, "tags": edit.tags, "metrics": edit.metrics}
            )
        converted = state.serving.get(version)
        if converted is not None:
            manifest = manifest.model_copy(
                update={
                    "serving_key": converted.key,
                    "serving_sha256": converted.sha256,
                    "serving_format": converted.format,
                    "loaded_bytes": converted.loaded_bytes,
                }
            )
        return VersionInfo(
            manifest,
            state.status(version),
            state.aliases_of(version),
            edit.edited_at if edit else None,
            edit.edited_by if edit else None,
            state.serving_line(manifest),
        )

    def resolve_version(
        self,
        name: str,
        state: ModelState,
        version: int | None,
        alias: str | None,
        routing_key: str | None = None,
    ) -> int:
        """The version a request means: explicit, an alias, else 'default', else latest active.
        A weighted alias picks its version by the request's routing key (registry.traffic);
        without one, its heaviest version.

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
            version = _aliased(name, state, alias, routing_key)
        elif version is None:
            if DEFAULT_ALIAS in state.aliases:
                version = _aliased(name, state, DEFAULT_ALIAS, routing_key)
            else:
                version = self.latest_active_version(name, state)
        self._check_exists(name, version, state)
        if version in state.archived:
            raise VersionArchivedError(f"version {version} of {name!r} is archived")
        return version

    def read_artifact(self, manifest: ModelManifest) -> bytes:
        """The artifact's bytes, refused unless they match the manifest's sha256."""
        expected = artifact_key(manifest.name, manifest.sha256, manifest.format)
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

    def read_serving_copy(self, manifest: ModelManifest, copy: ServingCopy | None = None) -> bytes:
        """A serving copy's bytes (the manifest's, or one converted later), refused unless
        they match its sha256 and sit at the content-addressed key of that sha256."""
        copy = copy or manifest.serving_copy
        assert copy is not None
        expected = serving_key(manifest.name, copy.sha256, copy.format)
        return self._read_verified(manifest, copy.key, expected, copy.sha256)

    # Aliases, archive, restore and edits -----------------------------------

    def update_state(self, name: str, change: Callable[[ModelState], ModelState]) -> ModelState:
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

    def set_alias(
        self, name: str, alias: str, version: int, shadow: int | None = None
    ) -> ModelState:
        """Point the alias at one version (ending a split), with a shadow version or none."""
        validate_name(alias, "alias")
        self.get_manifest(name, version)
        self._check_shadow(name, shadow, {version})

        def point(state: ModelState) -> ModelState:
            self._check_servable(name, [version, *([shadow] if shadow else [])], state)
            splits = {key: split for key, split in state.splits.items() if key != alias}
            aliases = {**state.aliases, alias: version}
            return state.model_copy(
                update={
                    "aliases": aliases,
                    "splits": splits,
                    "shadows": _with_shadow(state.shadows, alias, shadow),
                }
            )

        return self.update_state(name, point)

    def _check_shadow(self, name: str, shadow: int | None, serving: set[int]) -> None:
        if shadow is None:
            return
        if shadow in serving:
            raise InvalidRequestError(
                f"version {shadow} answers this alias's requests, so it cannot also be its "
                "shadow: name another version as the shadow"
            )
        self.get_manifest(name, shadow)

    def _check_servable(self, name: str, versions: list[int], state: ModelState) -> None:
        for version in versions:
            self._check_exists(name, version, state)
            if version in state.archived:
                raise VersionArchivedError(f"version {version} of {name!r} is archived")

    def set_alias_weights(
        self,
        name: str,
        alias: str,
        weights: dict[int, int],
        salt: str | None = None,
        shadow: int | None = None,
    ) -> ModelState:
        """Split the alias's traffic between versions by weight: one compare-and-swap, as any
        move of an alias. The alias keeps its salt (a key stays where it was unless the
        weights moved it) unless a new one is given; a new split gets a random one."""
        validate_name(alias, "alias")
        if not 2 <= len(weights) <= MAX_SPLIT_VERSIONS:
            raise InvalidRequestError(
                f"a weighted alias splits traffic between 2 and {MAX_SPLIT_VERSIONS} versions, "
                f"not {len(weights)}: send one version to point the alias at it alone"
            )
        bad = [f"{version}={weight}" for version, weight in weights.items() if weight < 1]
        if bad:
            raise InvalidRequestError(
                f"weights must be positive whole numbers, not {', '.join(bad)}: e.g. 7=90 8=10"
            )
        for version in weights:
            self.get_manifest(name, version)
        self._check_shadow(name, shadow, set(weights))

        def split(state: ModelState) -> ModelState:
            self._check_servable(name, [*weights, *([shadow] if shadow else [])], state)
            previous = state.splits.get(alias)
            kept_salt = previous.salt if previous is not None else new_salt()
            routed = AliasSplit(weights=dict(sorted(weights.items())), salt=salt or kept_salt)
            return state.model_copy(
                update={
                    "aliases": {**state.aliases, alias: routed.heaviest},
                    "splits": {**state.splits, alias: routed},
                    "shadows": _with_shadow(state.shadows, alias, shadow),
                }
            )

        return self.update_state(name, split)

    def put_reference(self, name: str, version: int, rows: list[Any]) -> int:
        """Keep rows with the version for the monitor to compare captured inputs with
        (replacing any kept before); returns how many."""
        self.get_manifest(name, version)
        self.store.put(reference_key(name, version), json.dumps({"rows": rows}).encode())
        return len(rows)

    def get_reference(self, name: str, version: int) -> list[Any] | None:
        """The version's reference rows, None if none were kept."""
        self.get_manifest(name, version)
        try:
            data = self.store.get(reference_key(name, version))
        except ObjectNotFoundError:
            return None
        rows: list[Any] = json.loads(data)["rows"]
        return rows

    def set_capture_percent(self, name: str, percent: float | None) -> ModelState:
        """The share of the model's predict requests captured; None: the deployment's."""
        if percent is not None and not 0 <= percent <= 100:
            raise InvalidRequestError(f"a capture share is 0 to 100 percent, not {percent}")
        if not self.list_versions(name):
            raise ModelNotFoundError(f"no model named {name!r}")
        return self.update_state(
            name, lambda state: state.model_copy(update={"capture_percent": percent})
        )

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
            splits = {key: split for key, split in state.splits.items() if key != alias}
            shadows = _with_shadow(state.shadows, alias, None)
            return state.model_copy(
                update={"aliases": aliases, "splits": splits, "shadows": shadows}
            )

        self.update_state(name, drop)
        return removed[0]

    def archive(self, name: str, version: int) -> VersionInfo:
        """Archive a version: listed as archived, never served, its number never reused."""
        manifest = self.get_manifest(name, version)

        def mark(state: ModelState) -> ModelState:
            self._check_exists(name, version, state)
            if aliases := state.aliases_of(version):
                raise VersionInUseError(
                    f"version {version} of {name!r} is the target of alias "
                    f"{', '.join(map(repr, aliases))}; move or remove it first"
                )
            if version in state.archived:
                return state
            return state.model_copy(update={"archived": sorted([*state.archived, version])})

        return self._info(manifest, self.update_state(name, mark))

    def restore(self, name: str, version: int) -> VersionInfo:
        """Bring an archived version back: served, listed active, free to be aliased."""
        manifest = self.get_manifest(name, version)

        def unmark(state: ModelState) -> ModelState:
            self._check_exists(name, version, state)
            archived = [number for number in state.archived if number != version]
            return state.model_copy(update={"archived": archived})

        return self._info(manifest, self.update_state(name, unmark))

    def edit_metadata(
        self,
        name: str,
        version: int,
        description: str | None = None,
        tags: dict[str, str | None] | None = None,
        metrics: dict[str, float | None] | None = None,
        edited_by: str | None = None,
    ) -> VersionInfo:
        """Replace the description; set tags and metrics, removing those set to None.

        What was registered (bytes, hash, runtime, signature) never changes.
        """
        manifest = self.get_manifest(name, version)

        def edit(state: ModelState) -> ModelState:
            self._check_exists(name, version, state)
            current = self._info(manifest, state).manifest
            try:
                edited = VersionMetadata(
                    description=current.description if description is None else description,
                    tags=_merged(current.tags, tags),
                    metrics=_merged(current.metrics, metrics),
                    edited_at=self.clock(),
                    edited_by=edited_by,
                )
            except ValidationError as exc:
                raise InvalidRequestError(
                    f"the edited version would hold {_limits_broken(exc)}; remove some "
                    "(set them to null) in the same request"
                ) from None
            return state.model_copy(update={"metadata": {**state.metadata, version: edited}})

        return self._info(manifest, self.update_state(name, edit))


def _limits_broken(error: ValidationError) -> str:
    """'more than 50 tags' for the fields an edit took over their limits."""
    limits = {"tags": "more than 50 tags", "metrics": "more than 100 metrics"}
    fields = {str(detail["loc"][0]) for detail in error.errors() if detail["loc"]}
    return " and ".join(limits[field] for field in sorted(fields) if field in limits) or (
        "values over their limits"
    )


def _merged(current: dict[str, Any], changes: dict[str, Any] | None) -> dict[str, Any]:
    """A JSON merge patch (RFC 7396) of one level: None removes a key."""
    merged = {**current, **(changes or {})}
    return {key: value for key, value in merged.items() if value is not None}


def _encode(model: Any) -> bytes:
    return bytes(model.model_dump_json(indent=2).encode())


def _aliased(name: str, state: ModelState, alias: str, routing_key: str | None) -> int:
    split = state.splits.get(alias)
    if split is None or routing_key is None:
        return state.aliases[alias]
    return version_for(split, name, routing_key)


def _with_shadow(shadows: dict[str, int], alias: str, shadow: int | None) -> dict[str, int]:
    kept = {key: version for key, version in shadows.items() if key != alias}
    return {**kept, alias: shadow} if shadow is not None else kept
