"""A bounded, thread-safe LRU of loaded models that loads each key once at a time."""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass


@dataclass(frozen=True)
class Sized[Value]:
    """A value and what it costs the cache (for models: the artifact's byte size)."""

    value: Value
    size: int


class ModelCache[Value]:
    """Least-recently-used eviction once the summed sizes pass max_bytes.

    Concurrent misses on one key share a single load; a value larger than the
    whole cache is returned but not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, Sized[Value]] = OrderedDict()
        self._loading: dict[Hashable, Future[Sized[Value]]] = {}
        self._total = 0
        self._lock = threading.Lock()

    @property
    def total_bytes(self) -> int:
        return self._total

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        """Forget every entry (loads under way still finish)."""
        with self._lock:
            self._entries.clear()
            self._total = 0

    def get(self, key: Hashable) -> Value | None:
        """The cached value, marked as recently used, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry.value

    def get_or_load(self, key: Hashable, load: Callable[[], Sized[Value]]) -> tuple[Value, bool]:
        """The value for key and whether it was a hit; on a miss, load() runs once per key."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry.value, True
            future = self._loading.get(key)
            is_loader = future is None
            if future is None:
                future = self._loading[key] = Future()
        if not is_loader:
            return future.result().value, False
        try:
            loaded = load()
        except BaseException as exc:
            with self._lock:
                del self._loading[key]
            future.set_exception(exc)
            raise
        with self._lock:
            del self._loading[key]
            self._insert(key, loaded)
        future.set_result(loaded)
        return loaded.value, False

    def _insert(self, key: Hashable, entry: Sized[Value]) -> None:
        if entry.size > self.max_bytes:
            return
        self._entries[key] = entry
        self._total += entry.size
        while self._total > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._total -= evicted.size
