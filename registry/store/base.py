"""The object-store protocol: bytes under keys, nothing about models."""

from collections.abc import Iterator
from typing import Protocol


class ObjectStore(Protocol):
    """Keys are '/'-separated relative paths such as 'models/moons/versions/1.json'."""

    def get(self, key: str) -> bytes:
        """The object's bytes; raises ObjectNotFoundError if there is none."""
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

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key that starts with prefix, in ascending order."""
        ...
