"""The validator: refusals in our words, and a loaded artifact that misbehaves stays contained.

Registrations go through the real validator (a child process with a scrubbed environment,
which forks once more per artifact), as scripts/local_api.py runs it.
"""

import base64
import functools
import io
import json
import operator
import os
import pickle
import secrets
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy
import pytest
import sklearn.base
import sklearn.datasets
import sklearn.utils.validation
import skops.io
from sklearn.datasets import load_iris
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.discovery import all_estimators

from registry.artifacts import _walk, load_skops, skops_members_bytes
from registry.compiled import CompiledTrees
from registry.config import PicklePolicy
from registry.errors import (
    ArtifactTooLargeError,
    IncompatibleArtifactError,
    InvalidArtifactError,
    PickleRefusedError,
    ValidatorUnavailableError,
)
from registry.inspecting.isolation import SandboxMeasures
from registry.inspecting.worker import Zygote
from registry.manifest import ArtifactFormat, ServingFormat, ShaClaim, claim_key, sha256_hex
from registry.registering.registration import Registrar
from registry.registering.validator import Validator
from registry.registry import ModelRegistry
from registry.serving.cache import ModelCache
from registry.serving.predictor import LoadedModel, Predictor, load_model
from registry.structures import check_structures
from registry.validation import ArtifactRejected, RejectionReason
from tests.support.attack import (
    carrier,
    joblib_running,
    leave_behind,
    look_around,
    look_for_leftovers,
    report_of,
    start_chains,
    try_everything,
)
from tests.support.families import FAMILIES, family, records
from tests.support.models import joblib_of
from tests.support.registries import registrar_for
from tests.support.skops_forge import (
    array_node,
    empty_dict_node,
    json_node,
    members_of,
    named_node,
    reduce_node,
    sequence_node,
    with_attribute,
)

CONVERT = PicklePolicy.CONVERT
PICKLE_FREE = (ServingFormat.SKOPS, ServingFormat.COMPILED)


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
    # The kill itself is refused (seccomp), so the artifact fails to load.
    with pytest.raises(InvalidArtifactError, match="is not a joblib or skops file"):
        registrar.register("moons", pickle.dumps(KillsItsParent()))
    assert registrar.register("moons", joblib_of(fitted_linear())).created is True


def test_in_its_own_pid_namespace_the_zygote_cannot_be_killed_even_without_seccomp() -> None:
    """It is the namespace's init: a signal from inside that it does not handle is dropped."""
    sandbox = Zygote(SandboxMeasures.without(["seccomp"]))
    try:
        sandbox.start()
        zygote = sandbox.pid
        with pytest.raises(ArtifactRejected) as refused:
            sandbox.inspect(pickle.dumps(KillsItsParent()), ArtifactFormat.JOBLIB, CONVERT, 10**6)
        assert refused.value.rejection.reason is RejectionReason.NOT_AN_ESTIMATOR  # kill: None
        assert (sandbox.taints, sandbox.pid) == (0, zygote)
    finally:
        sandbox.stop()


def test_without_seccomp_a_killed_zygote_taints_the_sandbox_and_a_fresh_one_serves() -> None:
    sandbox = Zygote(SandboxMeasures.without(["seccomp", "own_processes"]))
    try:
        sandbox.start()
        first = sandbox.pid
        with pytest.raises(ArtifactRejected) as refused:
            sandbox.inspect(pickle.dumps(KillsItsParent()), ArtifactFormat.JOBLIB, CONVERT, 10**6)
        assert refused.value.rejection.reason is RejectionReason.STOPPED
        assert sandbox.taints == 1

        described = sandbox.inspect(
            joblib_of(fitted_linear()), ArtifactFormat.JOBLIB, CONVERT, 10**6
        )

        assert described.estimator.estimator_class.endswith("LinearRegression")
        assert sandbox.pid != first  # a fresh zygote, with a fresh home
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    """The sandbox, started from this process (whose environment has the test's secrets)."""
    sandbox = Zygote()
    yield sandbox
    sandbox.stop()


def test_an_artifact_that_writes_a_forged_answer_is_not_believed(zygote: Zygote) -> None:
    data = pickle.dumps(WritesAForgedAnswer())
    with pytest.raises(ArtifactRejected) as refused:
        zygote.inspect(data, ArtifactFormat.JOBLIB, PicklePolicy.CONVERT, max_serving_bytes=10**6)
    assert refused.value.rejection.reason is RejectionReason.STOPPED


def test_an_artifact_that_overruns_its_time_is_stopped(zygote: Zygote) -> None:
    with pytest.raises(ArtifactRejected) as refused:
        zygote.inspect(
            pickle.dumps(Sleeps()), ArtifactFormat.JOBLIB, PicklePolicy.CONVERT, 10**6, timeout=1
        )
    assert refused.value.rejection.reason is RejectionReason.STOPPED
    description = zygote.inspect(
        joblib_of(fitted_linear()), ArtifactFormat.JOBLIB, PicklePolicy.CONVERT, 10**6
    ).estimator
    assert description.estimator_class.endswith("LinearRegression")


def test_a_child_reaches_nothing_around_it(zygote: Zygote) -> None:
    described = zygote.inspect(
        joblib_running(try_everything, carrier()), ArtifactFormat.JOBLIB, CONVERT, 10**6
    ).estimator

    report = report_of(described.feature_names)
    assert report == {
        "signal_parent": "PermissionError",
        "signal_everyone": "PermissionError",
        "read_parent_memory": "PermissionError",
        "start_process": "PermissionError",
        "enter_namespace": "PermissionError",
        "write_import_path": "OSError",
        "write_tmp": "done",  # its own private /tmp, emptied after it
        "write_scratch": "done",
        "import_new_module": "ImportError",
        "signal_through_a_descriptor": "PermissionError",
        "limit_parent": "PermissionError",
        "open_socket": "PermissionError",
        "write_kernel_log": "OSError",  # a read-only /dev of null, zero, random ... only
        "processes_seen": "2",  # its own PID namespace: the zygote, and itself
    }


def test_nothing_a_child_writes_is_there_for_the_next(zygote: Zygote) -> None:
    def run(function: Any) -> list[str]:
        data = joblib_running(function, carrier())
        found = zygote.inspect(data, ArtifactFormat.JOBLIB, CONVERT, 10**6).estimator
        return found.feature_names or []

    written = run(leave_behind)
    assert all(name.endswith("=written") for name in written), written

    assert run(look_for_leftovers) == ["found=nothing"]


@pytest.mark.parametrize(
    ("off", "started", "survive"),
    [
        ([], False, False),
        (["seccomp", "own_processes"], True, False),
        (["seccomp", "own_processes", "reap"], True, True),
    ],
    ids=["all-measures", "reaped", "neither"],
)
def test_nothing_an_artifact_starts_outlives_its_validation(
    off: list[str], started: bool, survive: bool
) -> None:
    """Chains of new sessions and double forks: refused with seccomp; without it, every one
    is stopped and killed after the validation; without either, they live on. (Outside a
    PID namespace of its own, so that this test sees the pids the chains report.)"""
    sandbox = Zygote(SandboxMeasures.without(off))
    try:
        described = sandbox.inspect(
            joblib_running(start_chains, 6, 10, carrier()), ArtifactFormat.JOBLIB, CONVERT, 10**6
        ).estimator
        names = described.feature_names or []
        pids = [int(name.removeprefix("pid=")) for name in names if name.startswith("pid=")]
        assert bool(pids) is started, names
        if not started:
            assert names == ["start=PermissionError"]
        alive = [pid for pid in pids if _alive(pid)]
        assert (len(alive) == len(pids) == 60) if survive else alive == []
    finally:
        sandbox.stop()
    assert [pid for pid in pids if _alive(pid)] == []  # stopping the zygote kills its tree


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def test_the_sandbox_sees_no_secret_and_no_other_registrations_bytes(
    zygote: Zygote, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "canary-" + secrets.token_hex(12)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    prefix, suffix = "other-registrants-bytes-", secrets.token_hex(12)
    marker = prefix + suffix
    other = joblib_of(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]))
    other += marker.encode()  # joblib ignores trailing bytes: a valid artifact that holds it
    zygote.inspect(other, ArtifactFormat.JOBLIB, PicklePolicy.CONVERT, 10**6)

    description = zygote.inspect(
        joblib_running(look_around, prefix, carrier()),
        ArtifactFormat.JOBLIB,
        PicklePolicy.CONVERT,
        10**6,
    ).estimator

    seen = description.feature_names or []
    assert "LANG=C.UTF-8" in seen  # it did read the environments
    assert "memory searched" in seen
    assert f"found: {suffix}" not in seen
    # The control: where the other bytes are in memory (here), the same search finds them.
    assert f"found: {suffix}" in look_around(prefix, carrier()).feature_names_in_.tolist()
    assert not [value for value in seen if secret in value or "AWS_SECRET" in value]


def test_another_scikit_learn_version_is_named_with_ours(
    registrar: Registrar, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compressed joblib file hides its version from register: the validator names it."""
    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "1.5.2")
        buffer = io.BytesIO()
        joblib.dump(fitted_linear(), buffer, compress=3)
        old = buffer.getvalue()
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
    # A forest is served from its compiled form: arrays, never unpickled.
    assert manifest.serving_format is ServingFormat.COMPILED
    assert manifest.serving_key is not None and manifest.serving_key.endswith(".npz")
    rows = numpy.random.default_rng(0).normal(size=(200, 2))
    loaded = load_model(registry, manifest, PicklePolicy.DENY)
    assert isinstance(loaded, CompiledTrees)
    numpy.testing.assert_array_equal(loaded.predict(rows), moons_model.predict(rows))
    numpy.testing.assert_array_equal(loaded.predict_proba(rows), moons_model.predict_proba(rows))


def test_a_skops_model_outside_the_compiled_families_has_no_serving_copy(
    registrar: Registrar, registry: ModelRegistry
) -> None:
    model = fitted_linear()
    manifest = registrar.register("linear", skops.io.dumps(model)).info.manifest

    assert manifest.serving_key is None  # nothing the validator made is ever unpickled
    loaded = load_model(registry, manifest, PicklePolicy.DENY)
    numpy.testing.assert_array_equal(loaded.predict([[3.0]]), model.predict([[3.0]]))


def test_a_forged_compiled_form_is_refused_by_predict_which_serves_the_artifact(
    registry: ModelRegistry, moons_model: Any
) -> None:
    """A hostile artifact controls its validation's answer: its "compiled form" is stored,
    and predict's loader refuses it, then loads the artifact (the caller's own model)."""
    pickled = base64.b64encode(pickle.dumps(Sleeps())).decode()
    registrar = forged(
        registry,
        runtime=RUNTIME,
        estimator=ESTIMATOR,
        serving_base64=pickled,
        serving_format="compiled",
    )
    manifest = registrar.register("moons", skops.io.dumps(moons_model)).info.manifest
    assert manifest.serving_format is ServingFormat.COMPILED

    loaded = load_model(registry, manifest, PicklePolicy.DENY)

    assert type(loaded) is type(moons_model)  # not a CompiledTrees: the artifact was loaded
    numpy.testing.assert_array_equal(
        loaded.predict([[0.5, 0.2]]), moons_model.predict([[0.5, 0.2]])
    )


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
    registry: ModelRegistry,
) -> None:
    model = fitted_linear()
    manifest = registrar_for(registry).register("linear", joblib_of(model)).info.manifest
    denying = registrar_for(registry, pickle_policy=PicklePolicy.DENY)

    with pytest.raises(PickleRefusedError, match=r"skops\.io\.dump"):
        denying.register("other", joblib_of(model))
    # A version registered earlier is served from its skops copy: nothing is unpickled.
    assert manifest.serving_format is ServingFormat.SKOPS
    served = load_model(registry, manifest, PicklePolicy.DENY)
    numpy.testing.assert_array_equal(served.predict([[3.0]]), model.predict([[3.0]]))
    # One with no such copy (registered before there were any) is refused.
    older = manifest.model_copy(update={"serving_key": None, "serving_sha256": None})
    with pytest.raises(PickleRefusedError, match=r"register it again as a \.skops file"):
        load_model(registry, older, PicklePolicy.DENY)


class Unreachable:
    def invoke(self, **_: Any) -> dict[str, Any]:
        raise ConnectionError("no route to the Lambda service")


def test_an_unreachable_validator_is_a_503_to_retry(registry: ModelRegistry) -> None:
    validator = Validator(Unreachable(), "validate", registry.store, 10**6)
    with pytest.raises(ValidatorUnavailableError, match="retry"):
        Registrar(registry, validator).register("moons", joblib_of(fitted_linear()))
    assert list(registry.store.list_keys("")) == []


class ForgedAnswers:
    """A validator whose every answer is this JSON: what a compromised one could say."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    def invoke(self, **_: Any) -> dict[str, Any]:
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(self.answer).encode())}


RUNTIME = {"python": "3.12.1", "scikit_learn": "1.9.1", "joblib": "1.6.0", "numpy": "2.5.5"}
ESTIMATOR = {"estimator_class": "sklearn.linear_model.LinearRegression", "n_features_in": 1}


def forged(registry: ModelRegistry, **answer: Any) -> Registrar:
    validator = Validator(ForgedAnswers(answer), "validate", registry.store, 10**6)
    return Registrar(registry, validator)


def test_a_forged_serving_copy_is_never_kept_for_a_skops_artifact(
    registry: ModelRegistry, moons_model: Any
) -> None:
    pickled = base64.b64encode(pickle.dumps(Sleeps())).decode()
    registrar = forged(registry, runtime=RUNTIME, estimator=ESTIMATOR, serving_base64=pickled)

    manifest = registrar.register("moons", skops.io.dumps(moons_model)).info.manifest

    assert (manifest.format, manifest.serving_key) == (ArtifactFormat.SKOPS, None)
    assert not [key for key in registry.store.list_keys("models/") if "/serving/" in key]


@pytest.mark.parametrize(
    "answer",
    [
        {"runtime": {**RUNTIME, "scikit_learn": "ATTACKER TEXT: visit http://evil"}},
        {"estimator": {**ESTIMATOR, "classes": [float("nan")]}},
        {"estimator": {**ESTIMATOR, "classes": ["x" * 5000]}},
        {"estimator": {**ESTIMATOR, "estimator_class": "not a name; rm -rf /"}},
        {"estimator": ESTIMATOR, "extra": "field"},
    ],
    ids=["runtime-text", "nan-label", "huge-label", "class-name", "extra-field"],
)
def test_an_answer_outside_the_schema_is_refused_and_nothing_is_stored(
    registry: ModelRegistry, answer: dict[str, Any]
) -> None:
    registrar = forged(registry, **{"runtime": RUNTIME, "estimator": ESTIMATOR, **answer})

    with pytest.raises(InvalidArtifactError) as refused:
        registrar.register("moons", joblib_of(fitted_linear()))

    assert "stopped the validator" in refused.value.message
    assert "ATTACKER" not in refused.value.message
    assert list(registry.store.list_keys("")) == []


def test_a_claim_pointing_at_other_bytes_is_not_believed(
    registrar: Registrar, registry: ModelRegistry
) -> None:
    first = registrar.register("moons", joblib_of(fitted_linear())).info.manifest
    other = joblib_of(LinearRegression().fit([[0.0], [2.0]], [0.0, 1.0]))
    claim = ShaClaim(token="forged", claimed_at=first.created_at, version=first.version)
    registry.store.put(claim_key("moons", sha256_hex(other)), claim.model_dump_json().encode())

    registration = registrar.register("moons", other)

    assert (registration.created, registration.info.manifest.version) == (True, 2)
    assert registration.info.manifest.sha256 == sha256_hex(other)


class FailedInvocations:
    """A validator function that failed with this Lambda errorType."""

    def __init__(self, error_type: str) -> None:
        self.error_type = error_type

    def invoke(self, **_: Any) -> dict[str, Any]:
        answer = json.dumps({"errorType": self.error_type, "errorMessage": "SECRET-TEXT"})
        return {
            "StatusCode": 200,
            "FunctionError": "Unhandled",
            "Payload": io.BytesIO(answer.encode()),
        }


@pytest.mark.parametrize(
    ("error_type", "error", "message"),
    [
        ("StagedArtifactUnavailable", ValidatorUnavailableError, "retry"),
        ("ServingCopyUnavailable", ValidatorUnavailableError, "retry"),
        ("Sandbox.Timedout", ValidatorUnavailableError, "retry"),
        ("Function.ResponseSizeTooLarge", InvalidArtifactError, "description"),
        ("Runtime.ExitError", InvalidArtifactError, "stopped the validator"),
    ],
)
def test_a_failed_validator_is_a_retry_when_it_is_ours_and_a_422_when_it_is_the_artifacts(
    registry: ModelRegistry, error_type: str, error: type[Exception], message: str
) -> None:
    validator = Validator(FailedInvocations(error_type), "validate", registry.store, 10**6)
    with pytest.raises(error, match=message) as raised:
        Registrar(registry, validator).register("moons", joblib_of(fitted_linear()))
    assert "SECRET-TEXT" not in str(raised.value)
    assert list(registry.store.list_keys("")) == []


def test_a_histogram_boosting_model_on_categories_saved_with_skops_registers_and_serves(
    registrar: Registrar, registry: ModelRegistry
) -> None:
    """Its preprocessor keeps scikit-learn's check_array in a functools.partial."""
    case = family("hist_gradient_boosting_with_categories")
    model, frame = case.model, case.test_rows
    data = skops.io.dumps(model)
    assert "functools.partial" in skops.io.get_untrusted_types(data=data)

    manifest = registrar.register("wine", data, input_example=records(frame.head(2))).info.manifest

    served = load_model(registry, manifest, PicklePolicy.DENY)
    numpy.testing.assert_array_equal(served.predict(frame), model.predict(frame))
    numpy.testing.assert_array_equal(served.predict_proba(frame), model.predict_proba(frame))


@pytest.mark.parametrize(
    ("func", "named"),
    [
        (functools.partial(os.system, "echo planted"), "posix.system"),
        (functools.partial(sklearn.utils.validation.column_or_1d, warn=True), "column_or_1d"),
        (sklearn.datasets.load_iris, "sklearn.datasets._base.load_iris"),
    ],
    ids=["partial-of-os-system", "partial-of-another-scikit-learn-function", "a-function"],
)
def test_a_skops_file_calling_any_other_function_is_refused_with_its_name(
    registrar: Registrar, func: Any, named: str
) -> None:
    """Only the functions scikit-learn stores itself are trusted, in a partial or not: a
    FunctionTransformer calls its func with arguments the file chose."""
    model = make_pipeline(FunctionTransformer(), LogisticRegression())
    model.fit([[0.0], [1.0], [2.0], [3.0]], [0, 1, 0, 1])
    model.steps[0][1].func = func  # set after fitting: nothing here calls it
    data = skops.io.dumps(model)

    with pytest.raises(InvalidArtifactError, match=named):
        registrar.register("calls", data)
    with pytest.raises(ArtifactRejected) as refused:
        load_skops(data)
    assert refused.value.rejection.reason is RejectionReason.UNTRUSTED_TYPES


def test_a_skops_file_that_unfolds_past_the_limit_is_refused_before_it_is_read() -> None:
    model = fitted_linear()
    model.ballast_ = numpy.zeros(1_000_000)  # 8 MB, deflated to a few KB
    data = skops.io.dumps(model, compression=zipfile.ZIP_DEFLATED)
    assert len(data) < 100_000 and skops_members_bytes(data) > 8_000_000

    with pytest.raises(ArtifactRejected) as refused:
        load_skops(data, max_loaded_bytes=1_000_000)
    assert refused.value.rejection.reason is RejectionReason.TOO_LARGE_LOADED
    assert load_skops(data, max_loaded_bytes=10_000_000).ballast_.nbytes == 8_000_000


def test_what_a_model_takes_in_memory_is_measured_recorded_and_charged(
    registry: ModelRegistry,
) -> None:
    model = fitted_linear()
    model.ballast_ = numpy.arange(5_000_000, dtype=numpy.float64)  # 40 MB once loaded
    registrar = registrar_for(registry)
    registrar.validator.max_loaded_bytes = 30_000_000
    with pytest.raises(ArtifactTooLargeError, match=r"takes 4\d\.\d MB in memory once loaded"):
        registrar.register("heavy", joblib_of(model))

    registrar.validator.max_loaded_bytes = 100_000_000
    manifest = registrar.register("heavy", joblib_of(model)).info.manifest

    assert manifest.loaded_bytes is not None and 40_000_000 <= manifest.loaded_bytes < 100_000_000
    predictor = Predictor(registry, ModelCache[LoadedModel](10**9))
    predictor.predict("heavy", None, [[1.0]])
    assert predictor.cache.total_bytes >= 40_000_000  # not the file's size
    assert manifest.size_bytes < predictor.cache.total_bytes


def test_a_joblib_model_is_served_from_its_skops_copy_and_its_pickle_is_never_read(
    registrar: Registrar, registry: ModelRegistry
) -> None:
    model = fitted_linear()
    manifest = registrar.register("linear", joblib_of(model)).info.manifest
    assert manifest.serving_format is ServingFormat.SKOPS
    assert not skops.io.get_untrusted_types(data=registry.read_serving_copy(manifest))

    registry.store.put(manifest.artifact_key, pickle.dumps(ExitsTheProcess()))  # never read

    served = load_model(registry, manifest)
    numpy.testing.assert_array_equal(
        served.predict([[3.0], [-1.5]]), model.predict([[3.0], [-1.5]])
    )


def test_the_model_families_people_train_convert_to_skops_or_compiled_copies(
    registrar: Registrar, registry: ModelRegistry
) -> None:
    """Every hold-out family of the end-to-end tests, and more, from joblib files: each gets
    a copy predict loads without unpickling, and answers exactly as the model."""
    converted = {}
    for key in FAMILIES:
        case = family(key)
        example = records(case.test_rows.head(3)) if case.is_frame else case.test_rows[:3].tolist()
        info = registrar.register(
            key.replace("_", "-"), joblib_of(case.model), input_example=example
        )
        manifest = info.info.manifest
        served = load_model(registry, manifest, PicklePolicy.DENY)
        rows = case.test_rows
        assert numpy.array_equal(
            numpy.asarray(served.predict(rows)), numpy.asarray(case.model.predict(rows))
        ), key
        converted[key] = manifest.serving_format
    assert set(converted.values()) <= {ServingFormat.SKOPS, ServingFormat.COMPILED}
    assert len(converted) == len(FAMILIES) == 8


def fitted_with_defaults() -> dict[str, Any]:
    """Every estimator scikit-learn lists that fits the iris data with its defaults and
    predicts (meta-estimators, which need arguments, are left out)."""
    features, labels = load_iris(return_X_y=True)
    fitted = {}
    for kind in ("classifier", "regressor", "cluster", "transformer"):
        for name, cls in all_estimators(type_filter=kind):
            if not callable(getattr(cls, "predict", None)):
                continue
            try:
                model = cls()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if kind == "cluster":
                        model.fit(features)
                    else:
                        model.fit(features, features[:, 0] if kind == "regressor" else labels)
                    model.predict(features[:2])
            except Exception:
                continue
            fitted[name] = model
    return fitted


def test_every_estimator_scikit_learn_lists_converts_but_one_skops_cannot_save(
    zygote: Zygote,
) -> None:
    """The hold-out set of conversion: from joblib files, through the real sandbox."""
    example = load_iris().data[:3].tolist()
    outcomes = {}
    for name, model in fitted_with_defaults().items():
        try:
            found = zygote.inspect(
                joblib_of(model), ArtifactFormat.JOBLIB, CONVERT, 10**8, input_example=example
            )
            outcomes[name] = found.serving_format
        except ArtifactRejected as exc:
            outcomes[name] = exc.rejection.reason

    refused = {name: outcome for name, outcome in outcomes.items() if outcome not in PICKLE_FREE}
    assert refused == {"Birch": RejectionReason.NOT_CONVERTIBLE}  # skops: "not supported yet"
    assert len(outcomes) >= 80
    assert sum(outcome is ServingFormat.COMPILED for outcome in outcomes.values()) >= 10


def _forged_calls(marker: Path) -> dict[str, dict[str, Any]]:
    """Nodes that would have a scikit-learn module's function (subprocess's check_output,
    which sklearn.utils._testing re-exports) touch the marker, each by another node kind."""
    command = sequence_node("list", [json_node(value) for value in ("touch", str(marker))])
    return {
        "called-by-reduce": named_node(
            "ConstructorFromReduceNode",
            "sklearn.utils._testing.check_output",
            content=sequence_node("tuple", [command]),
        ),
        "held-as-a-type": named_node("TypeNode", "sklearn.utils._testing.check_output"),
        "called-as-a-list": named_node(
            "ListNode", "sklearn.utils._testing.check_output", content=[]
        ),
        "called-with-an-array": named_node(
            "NdArrayNode",
            "sklearn.utils._testing.check_output",
            type="json",
            content=[],
            shape=json_node([0]),
        ),
    }


@pytest.mark.parametrize(
    "kind", ["called-by-reduce", "held-as-a-type", "called-as-a-list", "called-with-an-array"]
)
def test_a_skops_file_naming_a_function_in_any_kind_of_node_is_refused_before_it_runs(
    tmp_path: Path, kind: str
) -> None:
    marker = tmp_path / "ran"
    data = with_attribute(fitted_linear(), "x_", _forged_calls(marker)[kind])

    with pytest.raises(ArtifactRejected) as refused:
        load_skops(data)

    assert refused.value.rejection.untrusted_types == ["sklearn.utils._testing.check_output"]
    assert not marker.exists()


def test_trusting_what_skops_lists_would_have_run_the_forged_call(tmp_path: Path) -> None:
    """The control: loaded with every name skops lists trusted, the file runs the command."""
    marker = tmp_path / "ran"
    data = with_attribute(fitted_linear(), "x_", _forged_calls(marker)["called-by-reduce"])

    skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))

    assert marker.exists()


def test_a_member_read_many_times_counts_as_many_times_toward_the_limit() -> None:
    model = fitted_linear()
    model.ballast_ = numpy.zeros(125_000)  # one member of 1 MB
    data = skops.io.dumps(model)
    (member,) = [name for name, size in members_of(data).items() if size > 1_000_000]
    forged = with_attribute(model, "copies_", sequence_node("list", [array_node(member)] * 200))
    assert sum(members_of(forged).values()) < 2_000_000  # what the zip directory says

    assert skops_members_bytes(forged) > 200_000_000  # what loading it would read
    with pytest.raises(ArtifactRejected) as refused:
        load_skops(forged, max_loaded_bytes=50_000_000)
    assert refused.value.rejection.reason is RejectionReason.TOO_LARGE_LOADED


@pytest.mark.parametrize(
    ("loader", "name"),
    [
        ("ObjectNode", "sklearn.callback._scoring_monitor.ScoringMonitor"),  # connects out
        ("LossNode", "sklearn.callback._transport.ListenerHandle"),
        ("LossNode", "sklearn.linear_model._logistic.LogisticRegression"),  # called with args
        ("ObjectNode", "sklearn.utils._testing.MinimalClassifier"),
    ],
    ids=["a-callback", "its-handle-built-by-a-loss-node", "an-estimator-called", "a-test-helper"],
)
def test_a_skops_file_naming_a_class_estimators_are_not_made_of_is_refused(
    loader: str, name: str
) -> None:
    if loader == "LossNode":
        node = reduce_node(loader, name, [json_node("127.0.0.1"), json_node(1)])
    else:
        node = named_node(loader, name, content=empty_dict_node())
    data = with_attribute(fitted_linear(), "x_", node)

    with pytest.raises(ArtifactRejected) as refused:
        load_skops(data)

    assert refused.value.rejection.untrusted_types == [name]


def test_skops_keeping_a_list_of_trusted_names_per_node_counts_toward_the_limit() -> None:
    data = skops.io.dumps(family("hist_gradient_boosting_with_categories").model)
    nodes = len(list(_walk(json.loads(zipfile.ZipFile(io.BytesIO(data)).read("schema.json")))))

    more = skops_members_bytes(data, trusted_names=100) - skops_members_bytes(data)

    assert more == nodes * 100 * 8


def test_a_schema_nested_past_pythons_recursion_limit_is_not_loadable() -> None:
    deep = io.BytesIO()
    with zipfile.ZipFile(deep, "w") as archive:
        archive.writestr("schema.json", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ArtifactRejected) as refused:
        load_skops(deep.getvalue())
    assert refused.value.rejection.reason is RejectionReason.NOT_LOADABLE


def _crafted(kind: str) -> Any:
    """A fitted model whose index arrays were rewritten to point outside themselves."""
    features, labels = load_iris(return_X_y=True)
    if kind == "tree":
        model = DecisionTreeClassifier(random_state=0).fit(features, labels)
        state = model.tree_.__getstate__()
        state["nodes"]["left_child"][0] = 10**6
        model.tree_.__setstate__(state)
    elif kind == "histogram-predictor":
        model = HistGradientBoostingClassifier(max_iter=2).fit(features, labels)
        model._predictors[0][0].nodes["right"][0] = 10**6
    else:
        model = KNeighborsClassifier(algorithm="kd_tree").fit(features, labels)
        state = list(model._tree.__getstate__())
        state[1] = state[1] + 10**6  # the index into the training data
        model._tree.__setstate__(tuple(state))
    return model


@pytest.mark.parametrize("kind", ["tree", "histogram-predictor", "neighbour-tree"])
def test_a_skops_file_whose_index_arrays_point_outside_is_refused(kind: str) -> None:
    """scikit-learn's compiled code follows these indices without bounds checks: predict on
    such a model could read outside its arrays, and crash the process serving every model."""
    data = skops.io.dumps(_crafted(kind))
    skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))  # skops takes it

    with pytest.raises(ArtifactRejected) as refused:
        load_skops(data)
    assert refused.value.rejection.reason is RejectionReason.NOT_LOADABLE


def test_the_index_arrays_of_the_models_people_train_pass_the_checks() -> None:
    for model in fitted_with_defaults().values():
        check_structures(model)
    for key in FAMILIES:
        check_structures(family(key).model)
