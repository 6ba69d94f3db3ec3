"""The validator: refusals in our words, and a loaded artifact that misbehaves stays contained.

Registrations go through the real validator (a child process with a scrubbed environment,
which forks once more per artifact), as scripts/local_api.py runs it.
"""

import io
import json
import operator
import os
import pickle
from typing import Any

import joblib
import numpy
import pytest
import sklearn.base
import skops.io
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from registry.config import PicklePolicy
from registry.errors import (
    IncompatibleArtifactError,
    InvalidArtifactError,
    PickleRefusedError,
    ValidatorUnavailableError,
)
from registry.inspection import inspect_in_child
from registry.manifest import ArtifactFormat
from registry.predictor import load_model
from registry.registration import Registrar
from registry.registry import ModelRegistry
from registry.validation import ArtifactRejected, RejectionReason
from registry.validator import Validator
from tests.conftest import registrar_for


def joblib_of(value: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(value, buffer)
    return buffer.getvalue()


class RaisesWithText:
    """Unpickling raises an exception carrying text the artifact chose."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (eval, ("(_ for _ in ()).throw(ValueError('SECRET-TEXT-FROM-ARTIFACT'))",))


class ExitsTheProcess:
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (os._exit, (3,))


class KillsItsParent:
    """Kills the process that forked it: the validator's worker itself."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (eval, ("__import__('os').kill(__import__('os').getppid(), 9)",))


class Sleeps:
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (eval, ("__import__('time').sleep(30)",))


class WritesAForgedAnswer:
    """Writes a well-formed answer of its own to every descriptor, then exits."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        forged = json.dumps({"estimator": {"estimator_class": "forged.Model"}})
        code = (
            "[__import__('os').write(fd, " + repr(forged.encode()) + ") "
            "for fd in range(0, 64) if __import__('os').path.exists(f'/proc/self/fd/{fd}')]"
            " and __import__('os')._exit(0)"
        )
        return (eval, (code,))


def fitted_linear() -> LinearRegression:
    return LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])


@pytest.mark.parametrize(
    ("artifact", "message"),
    [
        (b"not a joblib file", "is not a joblib or skops file that loads with scikit-learn"),
        (b"PK\x03\x04 a zip that is not skops", "is not a joblib or skops file"),
        (joblib_of({"weights": [1, 2]}), "holds a dict, not an estimator with predict()"),
        (joblib_of(LogisticRegression()), "holds an unfitted LogisticRegression: call fit()"),
        (pickle.dumps(RaisesWithText()), "is not a joblib or skops file"),
        (pickle.dumps(ExitsTheProcess()), "stopped the validator"),
    ],
    ids=["not-joblib", "not-skops", "not-an-estimator", "unfitted", "raises", "exits"],
)
def test_refusals_say_what_was_wrong_in_our_words(
    registrar: Registrar, registry: ModelRegistry, artifact: bytes, message: str
) -> None:
    with pytest.raises(InvalidArtifactError) as refused:
        registrar.register("moons", artifact)
    assert message in refused.value.message
    assert "SECRET-TEXT" not in refused.value.message
    assert list(registry.store.list_keys("")) == []
    # and the validator still works for the next registration
    assert registrar.register("moons", joblib_of(fitted_linear())).created is True


def test_an_artifact_that_kills_the_validator_is_refused_and_the_validator_restarts(
    registrar: Registrar,
) -> None:
    with pytest.raises(InvalidArtifactError, match="stopped the validator"):
        registrar.register("moons", pickle.dumps(KillsItsParent()))
    assert registrar.register("moons", joblib_of(fitted_linear())).created is True


def test_an_artifact_that_writes_a_forged_answer_is_not_believed() -> None:
    data = pickle.dumps(WritesAForgedAnswer())
    with pytest.raises(ArtifactRejected) as refused:
        inspect_in_child(data, ArtifactFormat.JOBLIB, PicklePolicy.ALLOW, max_serving_bytes=10**6)
    assert refused.value.rejection.reason is RejectionReason.STOPPED


def test_an_artifact_that_overruns_its_time_is_stopped() -> None:
    with pytest.raises(ArtifactRejected) as refused:
        inspect_in_child(
            pickle.dumps(Sleeps()), ArtifactFormat.JOBLIB, PicklePolicy.ALLOW, 10**6, timeout=1
        )
    assert refused.value.rejection.reason is RejectionReason.STOPPED


def test_another_scikit_learn_version_is_named_with_ours(
    registrar: Registrar, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "1.5.2")
        old = joblib_of(fitted_linear())
    with pytest.raises(IncompatibleArtifactError) as refused:
        registrar.register("linear", old)
    assert refused.value.message.startswith("the artifact was saved with scikit-learn 1.5.2; ")
    assert f"save it again with scikit-learn {sklearn.__version__}" in refused.value.message


def test_a_skops_file_registers_and_predicts_exactly(
    registrar: Registrar, registry: ModelRegistry, moons_model: Any
) -> None:
    manifest = registrar.register("moons", skops.io.dumps(moons_model)).info.manifest

    assert manifest.format is ArtifactFormat.SKOPS
    assert manifest.artifact_key.endswith(".skops")
    assert manifest.serving_key is None  # nothing the validator made is ever unpickled
    rows = numpy.random.default_rng(0).normal(size=(200, 2))
    loaded = load_model(registry, manifest, PicklePolicy.DENY)
    numpy.testing.assert_array_equal(loaded.predict(rows), moons_model.predict(rows))
    numpy.testing.assert_array_equal(loaded.predict_proba(rows), moons_model.predict_proba(rows))


def test_a_skops_file_with_types_outside_scikit_learn_is_refused_with_their_names(
    registrar: Registrar,
) -> None:
    rows = numpy.array([[1.0], [2.0], [3.0], [4.0]])
    model = make_pipeline(FunctionTransformer(func=operator.neg), LogisticRegression())
    with pytest.raises(InvalidArtifactError) as refused:
        registrar.register("negated", skops.io.dumps(model.fit(rows, [0, 1, 0, 1])))
    assert "(_operator.neg)" in refused.value.message
    assert "only scikit-learn's own types" in refused.value.message


def test_with_pickle_denied_joblib_is_refused_at_registration_and_in_predict(
    registry: ModelRegistry, moons_bytes: bytes
) -> None:
    manifest = registrar_for(registry).register("moons", moons_bytes).info.manifest
    denying = registrar_for(registry, pickle_policy=PicklePolicy.DENY)

    with pytest.raises(PickleRefusedError, match=r"skops\.io\.dump"):
        denying.register("other", moons_bytes)
    with pytest.raises(PickleRefusedError, match=r"register it again as a \.skops file"):
        load_model(registry, manifest, PicklePolicy.DENY)


class Unreachable:
    def invoke(self, **_: Any) -> dict[str, Any]:
        raise ConnectionError("no route to the Lambda service")


def test_an_unreachable_validator_is_a_503_to_retry(registry: ModelRegistry) -> None:
    validator = Validator(Unreachable(), "validate", registry.store, 10**6)
    with pytest.raises(ValidatorUnavailableError, match="retry"):
        Registrar(registry, validator).register("moons", joblib_of(fitted_linear()))
    assert list(registry.store.list_keys("")) == []
