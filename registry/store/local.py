"""A directory on the local file system: the embedded store for local use and tests."""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from registry.errors import InvalidNameError, ObjectNotFoundError


class LocalStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidNameError(f"key {key!r} leaves the store")
        return path

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
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

    def list_keys(self, prefix: str) -> Iterator[str]:
        directory = self.root / prefix.rpartition("/")[0]
        if not directory.is_dir():
            return iter(())
        keys = (
            path.relative_to(self.root).as_posix()
            for path in directory.rglob("*")
            if path.is_file() and not path.name.startswith(".tmp-")
        )
        return iter(sorted(key for key in keys if key.startswith(prefix)))
