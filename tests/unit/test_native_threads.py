"""Native thread pools held to the function's CPU share in every predict call."""

import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy
import pytest
from sklearn.datasets import load_wine, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import ThreadpoolController, threadpool_info

from registry.registering.registration import Registrar
from registry.registry import ModelRegistry
from registry.serving import predictor as predictor_module
from registry.serving.cache import ModelCache
from registry.serving.fastpath import Predictors, predictors_for
from registry.serving.native_threads import NativeThreads, cpu_share_threads
from registry.serving.predictor import LoadedModel, Predictor
from registry.store.base import ObjectStore
from registry.store.local import LocalStore
from tests.support.models import joblib_of


@pytest.mark.parametrize(
    ("memory_mb", "threads"),
    [(None, 1), (128, 1), (1024, 1), (1769, 1), (3538, 2), (10240, 5)],
)
def test_the_cpu_share_is_one_thread_per_1769_mb(memory_mb: int | None, threads: int) -> None:
    assert cpu_share_threads(memory_mb) == threads


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    """Rows, signatures and thread pools do not depend on the store: the directory one."""
    return LocalStore(tmp_path / "registry")


def pool_sizes() -> dict[str, int]:
    return {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}


@pytest.fixture
def seen_in_predict(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, int]]:
    """The native pool sizes each predict() call of a loaded model runs with."""
    seen: list[dict[str, int]] = []

    def recording(estimator: Any) -> Predictors:
        real = predictors_for(estimator)

        def predict(features: Any) -> Any:
            seen.append(pool_sizes())
            return real.predict(features)

        return Predictors(predict, real.predict_proba)

    monkeypatch.setattr(predictor_module, "predictors_for", recording)
    return seen


@pytest.mark.parametrize("limit", [1, None])
def test_predict_runs_with_the_pools_held_to_the_limit(
    registry: ModelRegistry,
    registrar: Registrar,
    seen_in_predict: list[dict[str, int]],
    limit: int | None,
) -> None:
    features, target = load_wine(return_X_y=True)
    model = HistGradientBoostingClassifier(max_iter=10).fit(features, target)
    registrar.register("wine", joblib_of(model))
    predictor = Predictor(registry, ModelCache[LoadedModel](10**8), native_threads=limit)

    # Pools of two threads to start from, whatever earlier tests set; restored afterwards.
    with ThreadpoolController().limit(limits=2):
        result = predictor.predict("wine", None, features[:3].tolist())

    assert numpy.array_equal(result.predictions, model.predict(features[:3]))
    (during,) = seen_in_predict
    assert "openmp" in during  # HistGradientBoosting predicts through OpenMP
    assert set(during.values()) == ({1} if limit == 1 else {2})


def test_the_limit_is_set_once_per_thread_and_again_after_a_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real_limit = ThreadpoolController.limit

    def counted(self: ThreadpoolController, **kwargs: Any) -> Any:
        calls.append(threading.current_thread().name)
        return real_limit(self, **kwargs)

    threads = NativeThreads(1)
    with ThreadpoolController().limit(limits=2):
        monkeypatch.setattr(ThreadpoolController, "limit", counted)
        threads.refresh()
        threads.apply()
        threads.apply()
        worker = threading.Thread(target=threads.apply, name="worker")
        worker.start()
        worker.join()
        threads.refresh()  # a model load that imported nothing: the same libraries
        threads.apply()
        # A model load that imported a module (which may bring a library with a pool).
        monkeypatch.setitem(sys.modules, "a_module_a_model_load_imported", types.ModuleType("m"))
        threads.refresh()
        threads.apply()
        monkeypatch.undo()

    assert calls == ["MainThread", "worker", "MainThread"]


def test_served_probabilities_are_the_model_run_with_the_same_thread_count(
    registry: ModelRegistry, registrar: Registrar
) -> None:
    """docs/api.md's promise: exact against the model run with NATIVE_THREADS threads."""
    # Three classes: the pools' split changes the last bits of thousands of these probabilities.
    features, target = make_classification(
        n_samples=2000, n_features=500, n_informative=20, n_classes=3, random_state=0
    )
    model = LogisticRegression(max_iter=500).fit(features, target)
    registrar.register("wide", joblib_of(model))
    predictor = Predictor(registry, ModelCache[LoadedModel](10**8), native_threads=1)

    with ThreadpoolController().limit(limits=2):
        served = predictor.predict("wide", None, features.tolist(), probabilities=True)
    with ThreadpoolController().limit(limits=1):
        one_thread = model.predict_proba(features)

    assert numpy.array_equal(numpy.asarray(served.probabilities), one_thread)
