"""A directory on the local file system: the embedded store for local use and tests."""

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from registry.errors import (
    InvalidNameError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    UploadsUnavailableError,
)
from registry.store.base import Versioned


def _etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class LocalStore:
    """Objects are files under root; writes are atomic renames or links.

    upload_url is where scripts/local_api.py accepts uploads ('.../_uploads');
    without it, presign_put is refused.
    """

    def __init__(self, root: str | os.PathLike[str], upload_url: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.upload_url = upload_url.rstrip("/") if upload_url else None

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidNameError(f"key {key!r} leaves the store")
        return path

    def renew(self) -> None:
        """Nothing to reconnect."""

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        try:
            with self._path(key).open("rb") as stored:
                data = stored.read() if max_bytes is None else stored.read(max_bytes + 1)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFoundError(f"no object at {key!r}") from exc
        if max_bytes is not None and len(data) > max_bytes:
            raise ObjectTooLargeError(f"the object at {key!r} is over {max_bytes} bytes")
        return data

    def get_versioned(self, key: str) -> Versioned:
        data = self.get(key)
        return Versioned(data, _etag(data))

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFoundError(f"no object at {key!r}")
        return path.stat().st_size

    def get_range(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        try:
            with self._path(key).open("rb") as stored:
                stored.seek(start)
                return stored.read(end - start)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFoundError(f"no object at {key!r}") from exc

    def _write_temp(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as temp_file:
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        return Path(temp_name)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        os.replace(self._write_temp(path, data), path)

    def create(self, key: str, data: bytes) -> bool:
        # A hard link to a fully written temp file is atomic and fails if the
        # name exists: the directory store's equivalent of If-None-Match: *.
        path = self._path(key)
        temp_path = self._write_temp(path, data)
        try:
            os.link(temp_path, path)
        except FileExistsError:
            return path.read_bytes() == data
        finally:
            temp_path.unlink()
        return True

    @contextmanager
    def _exclusive(self, path: Path) -> Iterator[None]:
        """An advisory lock shared by every process that replaces this object."""
        lock_path = path.with_name(f".lock-{path.name}")
        with lock_path.open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def replace(self, key: str, data: bytes, etag: str) -> bool:
        path = self._path(key)
        if not path.parent.is_dir():
            return False
        with self._exclusive(path):
            try:
                current = path.read_bytes()
            except FileNotFoundError:
                return False
            if _etag(current) != etag:
                return False
            os.replace(self._write_temp(path, data), path)
            return True

    def delete(self, keys: Sequence[str]) -> None:
        # Empty folders stay: a concurrent create may be about to write into one.
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def list_keys(self, prefix: str) -> Iterator[str]:
        directory = self.root / prefix.rpartition("/")[0]
        if not directory.is_dir():
            return iter(())
        keys = (
            path.relative_to(self.root).as_posix()
            for path in directory.rglob("*")
            if path.is_file() and not path.name.startswith((".tmp-", ".lock-"))
        )
        return iter(sorted(key for key in keys if key.startswith(prefix)))

    def presign_put(self, key: str, expires_in: int) -> str:
        self._path(key)
        if self.upload_url is None:
            raise UploadsUnavailableError(
                "this directory store takes uploads only through scripts/local_api.py"
            )
        return f"{self.upload_url}/{key}"

    def presign_get(self, key: str, expires_in: int) -> str:
        """A directory store hands out no download URLs: its validator takes bytes inline."""
        self._path(key)
        raise UploadsUnavailableError("a directory store sends artifacts to its validator inline")
