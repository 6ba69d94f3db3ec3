"""Predictions from cached models; a warm request for a known version never reads the store."""

from collections import Counter
from typing import Any

import numpy
import pytest
from sklearn.linear_model import LinearRegression

from registry.errors import (
    InvalidInputError,
    InvalidRequestError,
    ModelNotFoundError,
    ProbabilitiesUnavailableError,
    TooManyInstancesError,
    VersionArchivedError,
)
from registry.registering.registration import Registrar
from registry.registry import ModelRegistry
from registry.serving.cache import ModelCache
from registry.serving.predictor import LoadedModel, Predictor
from registry.store.base import ObjectStore
from tests.support.models import distinct_model_bytes, joblib_of


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
def predictor(counting_store: CountingStore, moons_bytes: bytes, registrar: Registrar) -> Predictor:
    registry = ModelRegistry(counting_store)  # type: ignore[arg-type]
    registrar.register("moons", moons_bytes)
    return Predictor(registry, ModelCache[LoadedModel](max_bytes=10**8))


ROWS = [[0.5, 0.2], [1.5, -0.4], [-1.0, 1.0], [0.0, 0.0]]


def test_predictions_equal_the_models_own(predictor: Predictor, moons_model) -> None:
    result = predictor.predict("moons", 1, ROWS)

    assert result.predictions == moons_model.predict(numpy.array(ROWS)).tolist()
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


def test_without_a_version_the_latest_is_served(
    predictor: Predictor, moons_bytes: bytes, registrar: Registrar
) -> None:
    registrar.register("moons", distinct_model_bytes(5))
    assert predictor.predict("moons", None, ROWS).manifest.version == 2


def test_an_unknown_model_is_not_found(predictor: Predictor) -> None:
    with pytest.raises(ModelNotFoundError):
        predictor.predict("nobody", None, ROWS)


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([], "no rows were sent"),
        ([[1.0, 2.0, 3.0]], "row 0 has 3 values; the model takes 2"),
        ([[1.0, 2.0], [1.0]], "row 1 has 1 values; the model takes 2"),
        ([[float("nan"), 1.0]], "row 0, column '0': expected a finite number"),
        ([[1.0, float("inf")]], "row 0, column '1': expected a finite number"),
        ([[1.0, [2.0]]], "row 0, column '1': expected a number, got a list"),
        ([[1.0, "2"]], "row 0, column '1': expected a number, got the string \"2\""),
        ([[True, 1.0]], "row 0, column '0': expected a number, got true"),
    ],
)
def test_instances_that_do_not_fit_the_model_are_refused(
    predictor: Predictor, instances: list[list[float]], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        predictor.predict("moons", 1, instances)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ttl_predictor(store: ObjectStore, clock: FakeClock, registrar: Registrar) -> Predictor:
    registry = ModelRegistry(store)
    for seed in range(3):
        registrar.register("moons", distinct_model_bytes(seed))
    return Predictor(
        registry, ModelCache[LoadedModel](max_bytes=10**8), alias_ttl_seconds=30, clock=clock
    )


def test_a_warm_predictor_sees_an_alias_move_within_the_ttl(
    ttl_predictor: Predictor, clock: FakeClock
) -> None:
    registry = ttl_predictor.registry
    registry.set_alias("moons", "production", 1)
    assert ttl_predictor.predict("moons", None, ROWS, alias="production").manifest.version == 1

    registry.set_alias("moons", "production", 2)
    clock.now += 29
    assert ttl_predictor.predict("moons", None, ROWS, alias="production").manifest.version == 1
    clock.now += 2
    assert ttl_predictor.predict("moons", None, ROWS, alias="production").manifest.version == 2


def test_a_warm_predictor_refuses_an_archived_version_once_the_ttl_passes(
    ttl_predictor: Predictor, clock: FakeClock
) -> None:
    assert ttl_predictor.predict("moons", 3, ROWS).cache_hit is False
    ttl_predictor.registry.archive("moons", 3)
    clock.now += 31
    with pytest.raises(VersionArchivedError):
        ttl_predictor.predict("moons", 3, ROWS)
    assert ttl_predictor.predict("moons", None, ROWS).manifest.version == 2


def test_the_default_alias_is_served_when_the_request_names_no_version(
    ttl_predictor: Predictor,
) -> None:
    ttl_predictor.registry.set_alias("moons", "default", 2)
    assert ttl_predictor.predict("moons", None, ROWS).manifest.version == 2


def test_version_and_alias_together_are_refused(ttl_predictor: Predictor) -> None:
    with pytest.raises(InvalidRequestError):
        ttl_predictor.predict("moons", 1, ROWS, alias="production")


def test_probabilities_equal_predict_proba_in_the_order_of_classes(
    predictor: Predictor, moons_model: Any
) -> None:
    result = predictor.predict("moons", 1, ROWS, probabilities=True)

    assert result.probabilities == moons_model.predict_proba(numpy.array(ROWS)).tolist()
    assert result.manifest.classes == moons_model.classes_.tolist()


def test_probabilities_of_a_model_without_predict_proba_are_refused(
    store: ObjectStore, registrar: Registrar
) -> None:
    registry = ModelRegistry(store)
    registrar.register("linear", joblib_of(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])))
    predictor = Predictor(registry, ModelCache[LoadedModel](10**8))

    with pytest.raises(ProbabilitiesUnavailableError, match="LinearRegression"):
        predictor.predict("linear", None, [[0.5]], probabilities=True)
    assert predictor.predict("linear", None, [[0.5]]).predictions == [pytest.approx(0.5)]


@pytest.fixture
def named_predictor(store: ObjectStore, registrar: Registrar) -> tuple[Predictor, Any]:
    model = LinearRegression().fit([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]], [0.0, 1.0, 2.0])
    model.feature_names_in_ = numpy.array(["height", "width"], dtype=object)
    registry = ModelRegistry(store)
    registrar.register("sizes", joblib_of(model))
    return Predictor(registry, ModelCache[LoadedModel](10**8)), model


def test_named_instances_are_ordered_by_the_models_feature_names(
    named_predictor: tuple[Predictor, Any],
) -> None:
    predictor, model = named_predictor
    named = [{"width": 2.0, "height": 1.0}, {"height": 0.5, "width": 0.0}]

    result = predictor.predict("sizes", None, named)

    expected = model.predict(numpy.array([[1.0, 2.0], [0.5, 0.0]]))
    assert result.predictions == pytest.approx(expected.tolist())


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([{"height": 1.0}], r"row 0: .*\(missing width\): send exactly height, width"),
        (
            [{"height": 1.0, "width": 2.0}, {"height": 1.0, "width": 2.0, "depth": 3.0}],
            r"row 1: .*\(unknown depth\)",
        ),
        ([{"height": 1.0, "width": 2.0}, "wide"], 'row 1 is the string "wide"'),
    ],
)
def test_named_instances_with_wrong_names_are_refused_with_the_names(
    named_predictor: tuple[Predictor, Any], instances: list[Any], message: str
) -> None:
    predictor, _ = named_predictor
    with pytest.raises(InvalidInputError, match=message):
        predictor.predict("sizes", None, instances)


def test_named_instances_for_a_model_without_feature_names_are_refused(
    predictor: Predictor,
) -> None:
    with pytest.raises(InvalidInputError, match="fitted without column names"):
        predictor.predict("moons", 1, [{"x": 1.0, "y": 2.0}])


def test_more_instances_than_the_limit_are_refused_before_loading(
    counting_store: CountingStore, moons_bytes: bytes
) -> None:
    registry = ModelRegistry(counting_store)  # type: ignore[arg-type]
    predictor = Predictor(registry, ModelCache[LoadedModel](10**8), max_instances=3)
    counting_store.calls.clear()

    with pytest.raises(TooManyInstancesError, match="4 rows in one request"):
        predictor.predict("moons", 1, ROWS)
    assert counting_store.calls == Counter()


def test_a_new_alias_is_served_at_once_without_waiting_for_the_ttl(
    ttl_predictor: Predictor,
) -> None:
    assert ttl_predictor.predict("moons", 1, ROWS).manifest.version == 1  # state now cached
    ttl_predictor.registry.set_alias("moons", "canary", 3)
    assert ttl_predictor.predict("moons", None, ROWS, alias="canary").manifest.version == 3
