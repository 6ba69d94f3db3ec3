"""Deleting a whole model: every version, alias and object; its numbers are never reused.

1. Tombstone, by compare-and-swap on the model's state: deleted_through is its highest
   version, deleting is set, and aliases, archive and edits are cleared. From then on those
   versions are gone to every reader (not listed, resolved or served), and a registration
   of the name that has not begun writing is refused (409) instead.
2. Wait for the registrations that began writing before the tombstone (their sha256 claims
   are pending) to commit or give up. After that, nothing else writes under the model.
3. deleted_through moves up to any version they committed, and every object under
   models/<name>/ except state.json goes, manifests first, then the model's uploads.
4. deleting is cleared. Only state.json stays, the record of deleted_through, so the
   next registration of the name is deleted_through + 1.

Refused while an alias points into the model, unless forced. A delete cut short at any step
leaves the versions gone and registrations refused; deleting again finishes it.
"""

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from registry.errors import (
    ModelNotFoundError,
    ObjectNotFoundError,
    RegistrationInProgressError,
    VersionInUseError,
)
from registry.manifest import (
    UPLOADS_PREFIX,
    ModelState,
    ShaClaim,
    model_prefix,
    parse_version_key,
    state_key,
    versions_prefix,
)
from registry.registering.registration import CLAIM_STALE_AFTER, CLAIM_WAIT_SECONDS
from registry.registry import ModelRegistry
from registry.store.base import ObjectStore


@dataclass(frozen=True)
class DeletedModel:
    name: str
    # The highest version deleted; the next registration of the name is this plus one.
    deleted_through: int
    versions_deleted: int
    objects_deleted: int


class ModelDeleter:
    def __init__(
        self,
        registry: ModelRegistry,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        claim_wait_seconds: float = CLAIM_WAIT_SECONDS,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.claim_wait_seconds = claim_wait_seconds

    @property
    def store(self) -> ObjectStore:
        return self.registry.store

    def delete_model(self, name: str, force: bool = False) -> DeletedModel:
        state = self.registry.state(name)
        versions = self.registry.list_versions(name, state)
        if not versions and not state.deleting:
            raise ModelNotFoundError(f"no model named {name!r}")
        token = secrets.token_hex(16)
        self.registry.update_state(name, _tombstone(name, versions, token, force))
        self._wait_for_registrations(name)
        manifests = list(self.store.list_keys(versions_prefix(name)))
        every_version = [parsed[1] for parsed in map(parse_version_key, manifests) if parsed]
        tombstone = self.registry.update_state(name, _tombstone(name, every_version, token))
        self.store.delete(manifests)
        others = [key for key in self.store.list_keys(model_prefix(name)) if key != state_key(name)]
        uploads = list(self.store.list_keys(f"{UPLOADS_PREFIX}{name}/"))
        self.store.delete(others + uploads)
        self.registry.update_state(name, _swept(token))
        return DeletedModel(
            name,
            tombstone.deleted_through,
            versions_deleted=len(every_version),
            objects_deleted=len(manifests) + len(others) + len(uploads),
        )

    def _wait_for_registrations(self, name: str) -> None:
        """Until no registration that began before the tombstone is still writing.

        One pass reads every claim; later passes read again only those that were pending,
        since a registration that claims after the tombstone is refused before it writes.
        """
        deadline = time.monotonic() + self.claim_wait_seconds
        pending = self._pending_claims(self.store.list_keys(f"{model_prefix(name)}sha256/"))
        pause = 0.05
        while pending:
            if time.monotonic() >= deadline:
                raise RegistrationInProgressError(
                    f"a registration of {name!r} is still being written; its versions are "
                    "already gone: send the delete again in a minute to finish it"
                )
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
            pending = self._pending_claims(pending)

    def _pending_claims(self, keys: Iterable[str]) -> list[str]:
        pending = []
        for key in keys:
            try:
                claim = ShaClaim.model_validate_json(self.store.get(key))
            except ObjectNotFoundError:
                continue
            if claim.version is None and self.clock() - claim.claimed_at <= CLAIM_STALE_AFTER:
                pending.append(key)
        return pending


def _tombstone(
    name: str, versions: list[int], token: str, force: bool = True
) -> Callable[[ModelState], ModelState]:
    """Every version up to the highest of these is gone; nothing else of the state stays.

    The aliases are checked here, inside the compare-and-swap, so that an alias set while
    the delete began is not dropped without force.
    """

    def mark(state: ModelState) -> ModelState:
        if state.aliases and not force:
            pointers = ", ".join(f"{alias} -> {v}" for alias, v in sorted(state.aliases.items()))
            raise VersionInUseError(
                f"model {name!r} still has aliases ({pointers}): remove them first, or send "
                "force=true to delete the model with its aliases"
            )
        last = max([state.deleted_through, *versions])
        return ModelState(deleted_through=last, deleting=token)

    return mark


def _swept(token: str) -> Callable[[ModelState], ModelState]:
    """Registrations may resume, unless another delete took over meanwhile (its token)."""

    def clear(state: ModelState) -> ModelState:
        if state.deleting != token:
            return state
        return state.model_copy(update={"deleting": None})

    return clear
