"""The model cache: bounded by bytes, least recently used out first, one load per key."""

import threading
import time

import pytest

from registry.serving.cache import ModelCache, Sized


def loader(value: str, size: int, calls: list[str] | None = None):  # type: ignore[no-untyped-def]
    def load() -> Sized[str]:
        if calls is not None:
            calls.append(value)
        return Sized(value, size)

    return load


def test_a_miss_loads_and_a_second_request_is_a_hit() -> None:
    cache = ModelCache[str](max_bytes=100)
    calls: list[str] = []

    assert cache.get_or_load("a", loader("A", 10, calls)) == ("A", False)
    assert cache.get_or_load("a", loader("A", 10, calls)) == ("A", True)
    assert calls == ["A"]


def test_the_least_recently_used_entry_is_evicted_when_bytes_overflow() -> None:
    cache = ModelCache[str](max_bytes=100)
    cache.get_or_load("a", loader("A", 40))
    cache.get_or_load("b", loader("B", 40))
    cache.get_or_load("a", loader("A", 40))  # a is now the most recently used

    cache.get_or_load("c", loader("C", 40))

    assert "a" in cache and "c" in cache
    assert "b" not in cache
    assert cache.total_bytes == 80


def test_a_value_larger_than_the_cache_is_served_but_not_kept() -> None:
    cache = ModelCache[str](max_bytes=100)
    cache.get_or_load("small", loader("S", 10))

    assert cache.get_or_load("huge", loader("H", 500)) == ("H", False)
    assert "huge" not in cache
    assert "small" in cache


def test_concurrent_misses_for_one_key_load_it_once() -> None:
    cache = ModelCache[str](max_bytes=100)
    calls: list[str] = []
    start = threading.Barrier(8)
    results: list[tuple[str, bool]] = []

    def slow_load() -> Sized[str]:
        calls.append("load")
        time.sleep(0.2)
        return Sized("model", 10)

    def request() -> None:
        start.wait()
        results.append(cache.get_or_load("key", slow_load))

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert calls == ["load"]
    assert [value for value, _ in results] == ["model"] * 8


def test_a_failed_load_reaches_every_waiter_and_is_retried_next_time() -> None:
    cache = ModelCache[str](max_bytes=100)

    def failing() -> Sized[str]:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError):
        cache.get_or_load("key", failing)
    assert "key" not in cache
    assert cache.get_or_load("key", loader("V", 1)) == ("V", False)
