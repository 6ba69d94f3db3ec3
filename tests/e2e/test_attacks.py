"""The attacks of issue 19, replayed through the local server on moto's S3 server.

A registrant who can only register runs each attack with its artifact; then the victims are
checked byte for byte: their objects in S3, their answers (each equal to its own predict on
every row), and that nothing of theirs came back to the attacker. Each attack is run again
with its defence switched off (a sandbox measure left off, the pickle opt-in, the old
policy), where it succeeds, so that each test can fail.
"""

import base64
import json
import os
import re
import signal
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import numpy
import pytest
import skops.io
from sklearn.datasets import make_moons
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline

from registry.artifacts import check_one_prediction_per_row
from registry.http.gateway import LOCAL_API_EXECUTION_ARN
from tests.support.attack import (
    PLANTED_INSPECTING,
    PLANTED_INSPECTION,
    PLANTED_REGISTRY,
    PLANTED_SKOPS,
    carrier,
    joblib_running,
    patching_joblib,
    plant_registry_and_exit,
    plant_skops,
    read_stash,
    report_of,
    start_chains,
)
from tests.support.http import API_KEY, request, start_local_api
from tests.support.models import joblib_of
from tests.support.policies import readme_policy
from tests.support.registries import BUCKET, REGION

REPO_ROOT = Path(__file__).resolve().parents[2]
FEATURES, LABELS = make_moons(n_samples=200, noise=0.3, random_state=0)
ROWS = numpy.random.default_rng(1).normal(size=(20, 2))


@pytest.fixture(scope="module")
def linear() -> LogisticRegression:
    return LogisticRegression().fit(FEATURES, LABELS)


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(FEATURES, LABELS)


@contextmanager
def server(moto_server: str, *args: str, **settings: str) -> Iterator[tuple[str, int]]:
    """The local server on moto's S3, with these settings; its URL and process id."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "REGISTRY_URI": f"s3://{BUCKET}/registry",
        "AWS_ENDPOINT_URL_S3": moto_server,
        **settings,
    }
    process, url = start_local_api(env, "--api-key", API_KEY, *args)
    try:
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def register(url: str, name: str, artifact: bytes, **extra: Any) -> tuple[int, Any]:
    body = {"artifact": base64.b64encode(artifact).decode(), **extra}
    return request(f"{url}/models/{name}/versions", body=body)


def answers(url: str, name: str, rows: Any = ROWS) -> list[Any]:
    status, answer = request(
        f"{url}/predict?model={name}",
        body={"instances": numpy.asarray(rows).tolist()},
        headers={"x-api-key": API_KEY},
    )
    assert status == 200, answer
    return list(answer["predictions"])


def objects(prefix: str, endpoint: str) -> dict[str, bytes]:
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {
        item["Key"]: s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read() for item in listed
    }


def agreeing(served: list[Any], model: Any) -> int:
    """On how many rows the served answers are the model's own predictions."""
    return int(sum(a == b for a, b in zip(served, model.predict(ROWS).tolist(), strict=True)))


class Victims:
    """A model registered before the attack, and what it was; and tenants after it."""

    def __init__(self, url: str, endpoint: str, linear: Any) -> None:
        self.url, self.endpoint = url, endpoint
        self.victim_bytes = joblib_of(linear)
        status, answer = register(url, "victim", self.victim_bytes)
        assert status == 201, answer
        self.objects = objects("registry/models/victim/", endpoint)
        self.model = linear

    def unchanged(self) -> bool:
        """Its objects byte for byte, and its answers its own on every row."""
        same_objects = objects("registry/models/victim/", self.endpoint) == self.objects
        return same_objects and agreeing(answers(self.url, "victim"), self.model) == len(ROWS)


# 1. A poisoned validator ---------------------------------------------------------------


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "measures-off"])
def test_a_planted_registry_package_forges_no_later_tenants_model(
    moto_server: str, linear: Any, forest: Any, defended: bool
) -> None:
    """The attacker plants a registry package where the zygote imports from and exits
    abnormally, so that a fresh zygote starts and imports it; then reads back the bytes'
    digests its plant copied out."""
    off = {} if defended else {"SANDBOX_MEASURES_OFF": "private_filesystem,safe_import_path"}
    with server(moto_server, **off) as (url, _):
        victims = Victims(url, moto_server, linear)
        plant = joblib_running(
            plant_registry_and_exit,
            PLANTED_REGISTRY,
            PLANTED_INSPECTING,
            PLANTED_INSPECTION,
            carrier(),
        )
        planted_status, planted = register(url, "attacker", plant)

        later = {"later-linear": joblib_of(linear), "later-forest": skops.io.dumps(forest)}
        for name, artifact in later.items():
            assert register(url, name, artifact)[0] == 201
        served = {
            "later-linear": agreeing(answers(url, "later-linear"), linear),
            "later-forest": agreeing(answers(url, "later-forest"), forest),
        }
        _, read_back = register(url, "attacker-reads", joblib_running(read_stash, carrier()))
        stolen = [name for name in read_back.get("feature_names", []) if "stolen=" in name]
        later_digests = {name: _sha256(artifact) for name, artifact in later.items()}

        if defended:
            # the plant found nothing writable on the import path, nor anywhere
            assert planted_status == 201, planted
            assert report_of(planted["feature_names"]) == {"plant": "OSError"}
            assert served == {"later-linear": len(ROWS), "later-forest": len(ROWS)}
            assert stolen == []
            assert victims.unchanged()
        else:
            assert planted_status == 422  # it exited: the sandbox was tainted, and restarted
            assert served == {"later-linear": 0, "later-forest": 0}  # every label flipped
            assert {f"stolen={digest}" for digest in later_digests.values()} <= set(stolen)


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "measures-off"])
def test_a_planted_skops_package_is_never_imported_by_a_later_child(
    moto_server: str, linear: Any, forest: Any, defended: bool
) -> None:
    """No kill needed: the zygote never imported skops, so the next skops file's child would
    import the attacker's."""
    off = "private_filesystem,safe_import_path,preimport"
    with server(moto_server, **({} if defended else {"SANDBOX_MEASURES_OFF": off})) as (url, _):
        victims = Victims(url, moto_server, linear)
        plant = joblib_running(plant_skops, PLANTED_SKOPS, carrier())
        status, planted = register(url, "attacker", plant)
        assert status == 201, planted

        assert register(url, "later-forest", skops.io.dumps(forest))[0] == 201
        served = agreeing(answers(url, "later-forest"), forest)

        if defended:
            assert report_of(planted["feature_names"]) == {"plant": "OSError"}
            assert served == len(ROWS)
            assert victims.unchanged()
        else:
            assert report_of(planted["feature_names"])["plant"].endswith("skops/__init__.py")
            assert served == 0


# 2. Processes that outlive their validation ----------------------------------------------


@pytest.mark.parametrize(
    ("off", "started", "survive"),
    [
        ("", False, False),
        ("seccomp,own_processes", True, False),
        ("seccomp,own_processes,reap", True, True),
    ],
    ids=["defended", "no-seccomp-but-reaped", "measures-off"],
)
def test_no_process_an_artifact_starts_survives_its_registration(
    moto_server: str, linear: Any, off: str, started: bool, survive: bool
) -> None:
    """Six chains of ten processes, each in a new session, with double forks among them.
    (Outside the zygote's PID namespace in the runs without seccomp, so that the pids the
    chains report are this test's to check: inside it, every one dies with the zygote.)"""
    with server(moto_server, SANDBOX_MEASURES_OFF=off) as (url, _):
        victims = Victims(url, moto_server, linear)
        status, answer = register(url, "attacker", joblib_running(start_chains, 6, 10, carrier()))
        assert status == 201, answer
        time.sleep(1)
        names = answer["feature_names"]
        pids = [int(name.removeprefix("pid=")) for name in names if name.startswith("pid=")]
        alive = [pid for pid in pids if _alive(pid)]
        try:
            assert bool(pids) is started, names
            assert (len(alive) == len(pids) == 60) if survive else alive == []
            assert victims.unchanged()
        finally:
            for pid in alive:
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


# 3. A pickled model that rewrites the shared predict process ------------------------------


@pytest.mark.parametrize("policy", ["convert", "allow-unsafe"], ids=["defended", "pickle-opt-in"])
def test_a_pickled_model_cannot_patch_the_predict_process(
    moto_server: str, linear: Any, policy: str
) -> None:
    """Its class reduces to a function that patches Predictor.predict wherever it is
    unpickled: it flips the victim's labels, keeps its rows and artifact bytes, and hands
    them over through the attacker's own model. (preimport is off in both runs, so that the
    child can import the attacker's class at all: the policy alone is what differs.)"""
    settings = {"PICKLE_ARTIFACTS": policy, "SANDBOX_MEASURES_OFF": "preimport"}
    with server(moto_server, **settings) as (url, _):
        victims = Victims(url, moto_server, linear)
        trojan = patching_joblib("victim", FEATURES, LABELS)
        status, answer = register(url, "attacker", trojan)

        if policy == "convert":
            assert status == 422, answer
            assert answer["code"] == "pickle_refused"
            assert "tests.support.attack.PatchesPredict" in answer["message"]
            assert victims.unchanged()
        else:
            assert status == 201, answer
            assert answer["serving_format"] == "pickle"
            answers(url, "attacker")  # predict loads it: the patch is in
            assert agreeing(answers(url, "victim"), linear) == 0
            handed_over = json.loads(answers(url, "attacker")[0])
            assert handed_over[0] == ROWS.tolist()  # the victim's rows
            assert handed_over[1] == victims.victim_bytes[:16].hex()  # and its artifact


# 4. A memory bomb ---------------------------------------------------------------------------

BOMB_BYTES = 300_000_000


def bomb(seed: int) -> bytes:
    """A skops file of about 300 KiB holding a 300 MB array."""
    model = LogisticRegression().fit(FEATURES, LABELS)
    model.ballast_ = numpy.full(BOMB_BYTES // 8, float(seed))
    return skops.io.dumps(model, compression=zipfile.ZIP_DEFLATED, compresslevel=9)


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_memory_bomb_is_refused_at_registration(moto_server: str, linear: Any) -> None:
    artifact = bomb(0)
    assert len(artifact) < 1_000_000
    with server(moto_server) as (url, _):
        victims = Victims(url, moto_server, linear)
        status, answer = register(url, "bomb", artifact)

        assert status == 413, answer
        assert answer["code"] == "artifact_too_large"
        assert re.search(r"takes 300\.\d MB in memory once loaded", answer["message"])
        assert victims.unchanged()


CACHE_BYTES = 400_000_000
# What the server may hold beyond its cache: one model being loaded while another is cached,
# Python's and numpy's allocations, and what the decompression of a skops member needs.
SLACK_BYTES = 400_000_000


def test_registered_anyway_bombs_are_evicted_by_what_they_take_in_memory(
    moto_server: str, linear: Any
) -> None:
    """With the refusal switched off (MAX_LOADED_BYTES raised), three bombs register; the cache
    charges each 300 MB, so serving them in turn keeps resident memory within the cache (all
    three kept would pass the bound)."""
    settings = {"MAX_LOADED_BYTES": str(2 * 10**9), "CACHE_MAX_BYTES": str(CACHE_BYTES)}
    with server(moto_server, **settings) as (url, pid):
        victims = Victims(url, moto_server, linear)
        for seed in range(3):
            assert register(url, f"bomb-{seed}", bomb(seed))[0] == 201
        before = resident_bytes(pid)
        highest = 0
        for seed in range(3):
            answers(url, f"bomb-{seed}")
            highest = max(highest, resident_bytes(pid) - before)
        assert highest <= CACHE_BYTES + SLACK_BYTES, highest
        assert victims.unchanged()


def test_a_cache_charged_by_file_size_keeps_every_bomb(tmp_path: Path) -> None:
    """The control: charged what the file took (300 KiB), the cache keeps all three bombs."""
    from registry.registry import ModelRegistry
    from registry.serving.cache import ModelCache, Sized
    from registry.serving.predictor import LoadedModel, Predictor
    from registry.store import LocalStore
    from tests.support.registries import registrar_for

    class ChargedByFileSize(Predictor):
        def _load(self, name: str, version: int, converted: Any) -> Sized[LoadedModel]:
            loaded = super()._load(name, version, converted)
            return Sized(loaded.value, loaded.value.manifest.size_bytes)

    registry = ModelRegistry(LocalStore(tmp_path))
    registrar = registrar_for(registry)
    registrar.validator.max_loaded_bytes = 2 * 10**9
    cache = ModelCache[LoadedModel](CACHE_BYTES)
    predictor = ChargedByFileSize(registry, cache, max_loaded_bytes=2 * 10**9)
    for seed in range(3):
        registrar.register(f"bomb-{seed}", bomb(seed))
        predictor.predict(f"bomb-{seed}", None, ROWS.tolist())
    assert len(predictor.cache) == 3
    assert predictor.cache.total_bytes < 4_000_000  # it believes it holds 1 MB


# 5. A registrar of one team writing another team's models -------------------------------

OLD_REGISTRAR_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "execute-api:Invoke",
            "Resource": [
                f"{LOCAL_API_EXECUTION_ARN}/GET/models",
                f"{LOCAL_API_EXECUTION_ARN}/GET/models/*",
                f"{LOCAL_API_EXECUTION_ARN}/POST/models",
                f"{LOCAL_API_EXECUTION_ARN}/POST/models/*",
                f"{LOCAL_API_EXECUTION_ARN}/PUT/models/*",
                f"{LOCAL_API_EXECUTION_ARN}/DELETE/models/*",
            ],
        }
    ],
}


@pytest.mark.parametrize("policy", ["team", "every-name"], ids=["defended", "old-policy"])
def test_a_team_registrar_cannot_touch_another_teams_model(
    moto_server: str, linear: Any, forest: Any, tmp_path: Path, policy: str
) -> None:
    """The fraud team's registrar (the README's policy) against the payments team's model:
    a new version through either route, an alias move, an archive, a forced delete."""
    policy_file = tmp_path / "policy.json"
    chosen = readme_policy("team-registrar-policy") if policy == "team" else OLD_REGISTRAR_POLICY
    policy_file.write_text(json.dumps(chosen))
    endpoint = moto_server
    with server(moto_server) as (url, _):  # the payments team registers first, unhindered
        payments = Victims(url, endpoint, linear)
    with server(moto_server, "--iam-policy", str(policy_file)) as (url, _):
        payments.url = url  # read back through this server (/predict needs no IAM)
        artifact = base64.b64encode(skops.io.dumps(forest)).decode()
        attempts = [
            request(f"{url}/models/victim/versions", body={"artifact": artifact}),
            request(f"{url}/models", body={"name": "victim", "artifact": artifact}),
            request(f"{url}/models/victim/aliases/production", "PUT", {"version": 1}),
            request(f"{url}/models/victim/versions/1", "DELETE"),
            request(f"{url}/models/victim?force=true", "DELETE"),
        ]
        own = request(f"{url}/models/fraud-churn/versions", body={"artifact": artifact})

        assert own[0] == 201, own
        if policy == "team":
            assert [status for status, _ in attempts] == [403] * 5
            assert {answer["code"] for _, answer in attempts} == {"ACCESS_DENIED"}
            assert payments.unchanged()
        else:
            assert [status for status, _ in attempts[:2]] == [201, 200]
            assert not payments.unchanged()


# 6. A silent wrong answer ---------------------------------------------------------------------

# More praise than complaint: a word the model never saw (a column's name) reads as praise.
TEXTS = ["great wine", "lovely", "good taste", "fine", "awful", "dreadful"] * 5
TEXT_LABELS = [1, 1, 1, 1, 0, 0] * 5


def test_a_model_of_documents_with_a_one_row_example_is_refused(
    moto_server: str, linear: Any
) -> None:
    """Fitted on a plain list of texts, it reads a DataFrame's columns as its documents: a
    one-row request would be answered for the column's name."""
    model = make_pipeline(TfidfVectorizer(), MultinomialNB()).fit(TEXTS, TEXT_LABELS)
    with server(moto_server) as (url, _):
        victims = Victims(url, moto_server, linear)
        status, answer = register(
            url, "reviews", joblib_of(model), input_example=[{"review": "awful"}]
        )

        assert status == 422, answer
        assert answer["code"] == "invalid_artifact"
        assert "ColumnTransformer over the text column" in answer["message"]
        assert victims.unchanged()


def test_one_row_alone_would_not_have_caught_it() -> None:
    """The control: checked on the one-row example only, the model passes, and answers that
    row with its prediction for the column's name, not for the review."""
    import pandas

    model = make_pipeline(TfidfVectorizer(), MultinomialNB()).fit(TEXTS, TEXT_LABELS)
    one_row = pandas.DataFrame([{"review": "awful"}])
    check_one_prediction_per_row(model, [one_row])  # no refusal
    assert model.predict(one_row).tolist() == model.predict(["review"]).tolist()
    assert model.predict(one_row).tolist() != model.predict(["awful"]).tolist()


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
