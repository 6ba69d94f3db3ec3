"""Weighted aliases: each routing key to one version, as the weights say, and always the same
one; a new salt reshuffles the keys; a weight change is an alias move (compare-and-swap)."""

from collections import Counter

import pytest

from registry.errors import InvalidRequestError, VersionArchivedError, VersionInUseError
from registry.manifest import AliasSplit
from registry.registering.registration import Registrar
from registry.registry import ModelRegistry
from registry.serving.cache import ModelCache
from registry.serving.predictor import LoadedModel, Predictor
from registry.traffic import version_for
from tests.support.models import distinct_model_bytes

KEYS = [f"customer-{index}" for index in range(10_000)]
ROWS = [[0.5, 0.25]]


@pytest.fixture
def four_versions(registry: ModelRegistry, registrar: Registrar) -> ModelRegistry:
    for seed in range(4):
        registrar.register("churn", distinct_model_bytes(seed))
    return registry


def shares(split: AliasSplit, keys: list[str]) -> dict[int, float]:
    counts = Counter(version_for(split, "churn", key) for key in keys)
    return {version: counts[version] / len(keys) for version in split.weights}


@pytest.mark.parametrize(
    "weights",
    [{7: 90, 8: 10}, {1: 50, 2: 50}, {1: 1, 2: 1, 3: 1, 4: 1}, {3: 70, 4: 20, 5: 9, 6: 1}],
    ids=["90/10", "50/50", "four equal", "70/20/9/1"],
)
@pytest.mark.parametrize("salt", ["a1b2", "salt-two"])
def test_over_10000_keys_each_version_gets_its_weight_within_one_point(
    weights: dict[int, int], salt: str
) -> None:
    split = AliasSplit(weights=weights, salt=salt)
    total = sum(weights.values())
    for version, share in shares(split, KEYS).items():
        assert abs(share - weights[version] / total) < 0.01, (version, share)


def test_a_key_always_gets_the_same_version_and_a_new_salt_reshuffles() -> None:
    split = AliasSplit(weights={1: 50, 2: 50}, salt="first")
    chosen = [version_for(split, "churn", key) for key in KEYS]
    assert chosen == [version_for(split, "churn", key) for key in KEYS]
    resalted = AliasSplit(weights={1: 50, 2: 50}, salt="second")
    moved = sum(
        version_for(resalted, "churn", key) != was for key, was in zip(KEYS, chosen, strict=True)
    )
    assert 0.45 < moved / len(KEYS) < 0.55  # independent: about half move
    other_model = [version_for(split, "fraud", key) for key in KEYS]
    assert 0.45 < sum(a != b for a, b in zip(chosen, other_model, strict=True)) / len(KEYS) < 0.55


def test_a_weight_change_moves_only_the_keys_it_must() -> None:
    before = AliasSplit(weights={7: 90, 8: 10}, salt="s")
    after = AliasSplit(weights={7: 80, 8: 20}, salt="s")
    moves = Counter(
        (version_for(before, "churn", key), version_for(after, "churn", key)) for key in KEYS
    )
    assert moves[(8, 7)] == 0  # nobody on the new version goes back
    assert abs(moves[(7, 8)] / len(KEYS) - 0.10) < 0.01


def test_an_alias_split_is_stored_with_its_salt_and_kept_across_weight_changes(
    four_versions: ModelRegistry,
) -> None:
    registry = four_versions
    state = registry.set_alias_weights("churn", "production", {1: 90, 2: 10})
    split = state.splits["production"]
    assert split.weights == {1: 90, 2: 10} and len(split.salt) == 16
    assert state.aliases["production"] == 1  # the heaviest, where one version is meant
    moved = registry.set_alias_weights("churn", "production", {1: 50, 2: 50})
    assert moved.splits["production"].salt == split.salt
    resalted = registry.set_alias_weights("churn", "production", {1: 50, 2: 50}, salt="new")
    assert resalted.splits["production"].salt == "new"
    # pointing it at one version ends the split
    single = registry.set_alias("churn", "production", 3)
    assert "production" not in single.splits and single.aliases["production"] == 3


def test_versions_in_a_split_cannot_be_archived_and_archived_ones_cannot_join(
    four_versions: ModelRegistry,
) -> None:
    registry = four_versions
    registry.set_alias_weights("churn", "production", {1: 90, 2: 10})
    with pytest.raises(VersionInUseError, match="production"):
        registry.archive("churn", 2)
    registry.archive("churn", 4)
    with pytest.raises(VersionArchivedError):
        registry.set_alias_weights("churn", "canary", {3: 50, 4: 50})
    assert "canary" not in registry.state("churn").aliases


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({1: 100}, "between 2 and 4 versions"),
        ({1: 1, 2: 1, 3: 1, 4: 1, 5: 1}, "between 2 and 4 versions"),
        ({1: 90, 2: 0}, "positive whole numbers, not 2=0"),
    ],
)
def test_bad_splits_are_refused_and_change_nothing(
    four_versions: ModelRegistry, weights: dict[int, int], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        four_versions.set_alias_weights("churn", "production", weights)
    assert four_versions.state("churn").splits == {}


def test_predict_answers_each_routing_key_with_its_version_and_names_it(
    four_versions: ModelRegistry,
) -> None:
    registry = four_versions
    registry.set_alias_weights("churn", "production", {1: 70, 2: 30})
    predictor = Predictor(registry, ModelCache[LoadedModel](max_bytes=10**8))
    split = registry.state("churn").splits["production"]
    served = Counter()
    for key in KEYS[:400]:
        answer = predictor.predict("churn", None, ROWS, alias="production", routing_key=key)
        assert answer.manifest.version == version_for(split, "churn", key)
        served[answer.manifest.version] += 1
    assert set(served) == {1, 2}
    # the default alias splits too, for requests that name no version
    registry.set_alias_weights("churn", "default", {3: 50, 4: 50})
    predictor.forget_views()
    versions = {
        predictor.predict("churn", None, ROWS, routing_key=key).manifest.version
        for key in KEYS[:50]
    }
    assert versions == {3, 4}


def test_a_shadow_is_kept_with_its_alias_and_cannot_be_archived_or_answer(
    four_versions: ModelRegistry,
) -> None:
    registry = four_versions
    state = registry.set_alias_weights("churn", "production", {1: 90, 2: 10}, shadow=3)
    assert state.shadows == {"production": 3}
    assert registry.resolve_version("churn", state, None, "production", "any key") in (1, 2)
    with pytest.raises(VersionInUseError, match="production"):
        registry.archive("churn", 3)
    with pytest.raises(InvalidRequestError, match="cannot also be its shadow"):
        registry.set_alias("churn", "production", 3, shadow=3)
    # setting the alias again without a shadow drops it; removing the alias drops it too
    assert registry.set_alias("churn", "production", 1).shadows == {}
    registry.set_alias("churn", "canary", 1, shadow=4)
    registry.delete_alias("churn", "canary")
    assert registry.state("churn").shadows == {}
