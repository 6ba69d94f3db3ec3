"""Predictions from cached models; a warm request for a known version never reads the store."""

from collections import Counter
from typing import Any

import numpy
import pytest

from registry.cache import ModelCache
from registry.errors import InvalidInputError, ModelNotFoundError
from registry.predictor import LoadedModel, Predictor
from registry.registry import ModelRegistry
from registry.store.base import ObjectStore
from tests.conftest import distinct_model_bytes


class CountingStore:
    """The real store, counting every call made through it."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted


@pytest.fixture
def counting_store(store: ObjectStore) -> CountingStore:
    return CountingStore(store)


@pytest.fixture
def predictor(counting_store: CountingStore, moons_bytes: bytes) -> Predictor:
    registry = ModelRegistry(counting_store)  # type: ignore[arg-type]
    registry.register("moons", moons_bytes)
    return Predictor(registry, ModelCache[LoadedModel](max_bytes=10**8))


ROWS = [[0.5, 0.2], [1.5, -0.4], [-1.0, 1.0], [0.0, 0.0]]


def test_predictions_equal_the_models_own(predictor: Predictor, moons_model) -> None:
    result = predictor.predict("moons", 1, ROWS)

    assert result.labels == moons_model.predict(numpy.array(ROWS)).tolist()
    assert result.manifest.version == 1
    assert result.cache_hit is False


def test_a_warm_request_for_an_explicit_version_makes_no_store_call(
    predictor: Predictor, counting_store: CountingStore
) -> None:
    predictor.predict("moons", 1, ROWS)
    counting_store.calls.clear()

    result = predictor.predict("moons", 1, ROWS)

    assert result.cache_hit is True
    assert counting_store.calls == Counter()


def test_without_a_version_the_latest_is_served(predictor: Predictor, moons_bytes: bytes) -> None:
    predictor.registry.register("moons", distinct_model_bytes(5))
    assert predictor.predict("moons", None, ROWS).manifest.version == 2


def test_an_unknown_model_is_not_found(predictor: Predictor) -> None:
    with pytest.raises(ModelNotFoundError):
        predictor.predict("nobody", None, ROWS)


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([], "instances is empty"),
        ([[1.0, 2.0, 3.0]], "expects 2 features per instance, got 3"),
        ([[1.0], [1.0, 2.0]], "one length"),
        ([[float("nan"), 1.0]], "finite"),
        ([[float("inf"), 1.0]], "finite"),
    ],
)
def test_instances_that_do_not_fit_the_model_are_refused(
    predictor: Predictor, instances: list[list[float]], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        predictor.predict("moons", 1, instances)
