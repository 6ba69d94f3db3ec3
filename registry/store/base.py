"""The object-store protocol: bytes under keys, nothing about models."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Versioned:
    """An object's bytes and the entity tag that identifies this content."""

    data: bytes
    etag: str


class ObjectStore(Protocol):
    """Keys are '/'-separated relative paths such as 'models/moons/versions/1.json'."""

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes; raises ObjectNotFoundError if there is none.

        With max_bytes, reads at most max_bytes + 1 bytes and raises ObjectTooLargeError
        when the object has more: the limit holds for the bytes actually read.
        """
        ...

    def get_versioned(self, key: str) -> Versioned:
        """The object's bytes with its entity tag, for a later replace()."""
        ...

    def size(self, key: str) -> int:
        """How many bytes the object holds; raises ObjectNotFoundError if there is none."""
        ...

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """The object's bytes from start up to (not including) end: fewer past its end."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Store the bytes, replacing any object under the key; readers never see half of it."""
        ...

    def create(self, key: str, data: bytes) -> bool:
        """Store the bytes only if the key is free, atomically across processes.

        Returns False, writing nothing, when another object already exists under the key.
        Returns True when the key already holds exactly these bytes: a retried create
        (botocore retries a write whose answer was lost) finds its own write.
        """
        ...

    def replace(self, key: str, data: bytes, etag: str) -> bool:
        """Store the bytes only if the object still has this etag (compare-and-swap).

        Returns False, writing nothing, when the object changed or is gone.
        """
        ...

    def delete(self, keys: Sequence[str]) -> None:
        """Remove these objects; a key that holds none is no error (a retried delete succeeds)."""
        ...

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key that starts with prefix, in ascending order."""
        ...

    def renew(self) -> None:
        """Drop connections and credentials that must not outlive a SnapStart snapshot."""
        ...

    def presign_put(self, key: str, expires_in: int) -> str:
        """A URL that accepts one HTTP PUT of the object's bytes for expires_in seconds."""
        ...

    def presign_get(self, key: str, expires_in: int) -> str:
        """A URL that answers one HTTP GET of the object for expires_in seconds."""
        ...
