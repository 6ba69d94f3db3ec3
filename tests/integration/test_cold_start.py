"""Cold starts: the default model preloaded at init, and SnapStart's after-restore hook."""

import importlib.util
import uuid
from typing import Any

import pytest
import snapshot_restore_py

from registry.http import service
from registry.http.gateway import LocalLambdaContext
from tests.support.handlers import REPO_ROOT, Invoke, artifact_body, event_from


def import_predict_app_afresh() -> Any:
    """What a new Lambda execution environment does: run the module's init code."""
    name = f"predict_app_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "functions/predict/app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def moons_registered(register: Invoke, moons_bytes: bytes) -> None:
    assert register("register", body=artifact_body("moons", moons_bytes))[0] == 201
    service.reset()  # a new execution environment starts with nothing loaded


def test_init_preloads_the_default_model_so_the_first_request_is_a_hit(
    moons_registered: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRELOAD_DEFAULT_MODEL", "true")

    app = import_predict_app_afresh()

    assert ("moons", 1) in service.predictor().cache
    response = app.lambda_handler(event_from("classify"), LocalLambdaContext("predict"))
    assert response["statusCode"] == 200
    assert service.predictor().cache.get(("moons", 1)) is not None


def test_without_preload_nothing_is_loaded_at_init(moons_registered: None) -> None:
    import_predict_app_afresh()
    assert len(service.predictor().cache) == 0


def test_a_missing_default_model_does_not_stop_init(
    registry_on_moto: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRELOAD_DEFAULT_MODEL", "true")
    monkeypatch.setenv("DEFAULT_MODEL", "nobody")
    import_predict_app_afresh()
    assert service.preload_default_model() is False


def test_after_a_snapstart_restore_clients_are_new_and_models_stay(
    moons_registered: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRELOAD_DEFAULT_MODEL", "true")
    import_predict_app_afresh()
    store = service.model_registry().store
    client_before = store.s3  # type: ignore[attr-defined]
    service.predictor().resolve("moons")  # a view of the model's aliases is now cached

    # What the runtime does after restoring a snapshot: call each registered hook.
    hooks = snapshot_restore_py._after_restore_registry
    assert service.renew_after_restore in [hook for hook, _, _ in hooks]
    for hook, args, kwargs in hooks:
        hook(*args, **kwargs)

    assert store.s3 is not client_before  # type: ignore[attr-defined]
    assert service.predictor()._views == {}
    assert ("moons", 1) in service.predictor().cache
