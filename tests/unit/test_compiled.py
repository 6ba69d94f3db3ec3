"""Compiled tree forms: scikit-learn's answers to the last bit, and a loader that cannot be
made to read outside its arrays."""

import io
import subprocess
import sys
import zipfile
from typing import Any

import numpy
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine, make_moons
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from registry.compiled import CompiledFormError, CompiledTrees, load_compiled
from registry.inspecting.tree_compiler import compile_estimator, exact_form, generated_rows

MOONS = make_moons(400, noise=0.3, random_state=0)
WINE = load_wine(return_X_y=True)  # three classes
CANCER = load_breast_cancer(return_X_y=True)  # 30 features, two classes
DIABETES = load_diabetes(return_X_y=True)

CLASSIFIERS = [
    DecisionTreeClassifier(random_state=0),
    RandomForestClassifier(n_estimators=40, random_state=0),
    ExtraTreesClassifier(n_estimators=40, random_state=0),
    GradientBoostingClassifier(n_estimators=30, random_state=0),
    HistGradientBoostingClassifier(max_iter=30, random_state=0),
]
REGRESSORS = [
    DecisionTreeRegressor(random_state=0),
    RandomForestRegressor(n_estimators=40, random_state=0),
    ExtraTreesRegressor(n_estimators=40, random_state=0),
    GradientBoostingRegressor(n_estimators=30, random_state=0),
    HistGradientBoostingRegressor(max_iter=30, random_state=0),
]


def _fitted(estimator: Any, data: tuple[Any, Any]) -> Any:
    from sklearn.base import clone

    return clone(estimator).fit(*data)


def _served(estimator: Any, example: Any = None) -> CompiledTrees:
    """The form as predict gets it: made by the validator, stored, loaded back."""
    form = exact_form(estimator, example)
    assert form is not None, f"{type(estimator).__name__} was not compiled"
    return load_compiled(form.to_bytes())


def _rows_to_check(form: CompiledTrees, data: Any) -> list[Any]:
    generated = generated_rows(form, numpy.random.default_rng(7))  # other rows than the validator's
    return [data, generated, data[:1], generated[-1:]]


@pytest.mark.parametrize("data", [MOONS, WINE, CANCER], ids=["moons", "wine", "cancer"])
@pytest.mark.parametrize("estimator", CLASSIFIERS, ids=lambda e: type(e).__name__)
def test_compiled_classifiers_give_scikit_learns_labels_and_probabilities(
    estimator: Any, data: tuple[Any, Any]
) -> None:
    model = _fitted(estimator, data)
    form = _served(model, data[0][:20])

    for rows in _rows_to_check(form, data[0]):
        assert numpy.array_equal(form.predict(rows), model.predict(rows))
        assert numpy.array_equal(form.predict_proba(rows), model.predict_proba(rows))


@pytest.mark.parametrize("estimator", REGRESSORS, ids=lambda e: type(e).__name__)
def test_compiled_regressors_give_scikit_learns_values(estimator: Any) -> None:
    model = _fitted(estimator, DIABETES)
    form = _served(model)

    for rows in _rows_to_check(form, DIABETES[0]):
        assert numpy.array_equal(form.predict(rows), model.predict(rows))


@pytest.mark.parametrize(
    "estimator",
    [
        DecisionTreeRegressor(random_state=0),
        RandomForestRegressor(n_estimators=20, random_state=0),
        HistGradientBoostingRegressor(max_iter=20, random_state=0),
        HistGradientBoostingClassifier(max_iter=20, random_state=0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_missing_values_go_where_scikit_learn_sends_them(estimator: Any) -> None:
    features, target = DIABETES
    if type(estimator).__name__.endswith("Classifier"):
        target = target > numpy.median(target)
    with_missing = features.copy()
    with_missing[numpy.random.default_rng(0).random(features.shape) < 0.15] = numpy.nan
    model = estimator.fit(with_missing, target)
    form = _served(model)

    assert form.allow_nan
    assert numpy.array_equal(form.predict(with_missing), model.predict(with_missing))


def test_a_model_that_refuses_missing_values_is_compiled_to_refuse_them_too() -> None:
    model = _fitted(GradientBoostingClassifier(n_estimators=5), MOONS)
    form = _served(model)

    with pytest.raises(ValueError):
        model.predict([[numpy.nan, 0.0]])
    with pytest.raises(ValueError):
        form.predict([[numpy.nan, 0.0]])


def test_values_float32_cannot_hold_are_refused_as_scikit_learn_refuses_them() -> None:
    model = _fitted(RandomForestClassifier(n_estimators=3, random_state=0), MOONS)
    form = _served(model)

    with pytest.raises(ValueError):
        model.predict([[1e300, 0.0]])
    with pytest.raises(ValueError):
        form.predict([[1e300, 0.0]])


def test_string_labels_are_kept() -> None:
    features, target = MOONS
    labels = numpy.where(target == 1, "moon", "sea").astype(object)
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(features, labels)
    form = _served(model)

    assert form.predict(features[:50]).tolist() == model.predict(features[:50]).tolist()


def test_the_check_catches_a_form_that_differs_from_scikit_learn() -> None:
    """Comparing in float64 instead of float32 changes answers at thresholds: refused."""
    model = _fitted(RandomForestRegressor(n_estimators=20, random_state=0), DIABETES)
    form = compile_estimator(model)
    assert form is not None
    fields = {name: getattr(form, name) for name in CompiledTrees.__dataclass_fields__}
    unrounded = CompiledTrees(**{**fields, "float32_inputs": False})
    rows = generated_rows(form, numpy.random.default_rng(0))

    assert not numpy.array_equal(unrounded.predict(rows), model.predict(rows))
    assert numpy.array_equal(form.predict(rows), model.predict(rows))


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(),
        GradientBoostingRegressor(n_estimators=5, init=DummyRegressor(strategy="median")),
        RandomForestClassifier(n_estimators=5, n_jobs=2),
        GradientBoostingClassifier(n_estimators=5, loss="exponential"),
    ],
    ids=["not-a-tree", "dummy-median-init", "parallel-sum", "exponential-loss"],
)
def test_models_outside_the_compiled_families_keep_the_pickle_path(estimator: Any) -> None:
    features, target = MOONS
    model = estimator.fit(features, target)
    form = exact_form(model, features[:5])
    if type(model).__name__ == "GradientBoostingRegressor":
        # a median init is still a constant: compiled, and exact
        assert form is not None
        assert numpy.array_equal(form.predict(features), model.predict(features))
    else:
        assert form is None


def test_categorical_splits_keep_the_pickle_path() -> None:
    features, target = MOONS
    categories = numpy.column_stack([features[:, 0], (features[:, 1] > 0).astype(float)])
    model = HistGradientBoostingClassifier(max_iter=5, categorical_features=[1])
    assert exact_form(model.fit(categories, target), None) is None


# -- the loader ------------------------------------------------------------------------------


def _arrays(form: CompiledTrees) -> dict[str, Any]:
    loaded = numpy.load(io.BytesIO(form.to_bytes()), allow_pickle=False)
    return {name: loaded[name].copy() for name in loaded.files}


def _saved(arrays: dict[str, Any], compress: bool = False) -> bytes:
    buffer = io.BytesIO()
    (numpy.savez_compressed if compress else numpy.savez)(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def forest_arrays() -> dict[str, Any]:
    model = _fitted(RandomForestClassifier(n_estimators=5, random_state=0), MOONS)
    form = exact_form(model, None)
    assert form is not None
    return _arrays(form)


def test_a_stored_form_loads_back(forest_arrays: dict[str, Any]) -> None:
    assert load_compiled(_saved(forest_arrays)).n_trees == 5


@pytest.mark.parametrize(
    ("array", "crafted"),
    [
        ("children", lambda a: numpy.where(a == a.max(), a.max() + 1, a)),
        ("children", lambda a: numpy.concatenate([[-1], a[1:]])),
        ("feature", lambda a: a + 2),
        ("feature", lambda a: a - 1),
        ("roots", lambda a: a + 10**6),
        ("threshold", lambda a: a[:-1]),
        ("value", lambda a: a[:, :0]),
        ("meta", lambda a: numpy.concatenate([[2], a[1:]])),
        ("meta", lambda a: numpy.concatenate([a[:1], [99], a[2:]])),
        ("feature", lambda a: a.astype(numpy.int64)),
        ("classes", lambda a: numpy.array([0, 1, 2])),
    ],
)
def test_a_crafted_form_is_refused_before_it_can_read_outside_its_arrays(
    forest_arrays: dict[str, Any], array: str, crafted: Any
) -> None:
    arrays = dict(forest_arrays)
    arrays[array] = crafted(arrays[array])
    with pytest.raises(CompiledFormError):
        load_compiled(_saved(arrays))


def test_a_form_holding_a_pickle_or_compressed_arrays_is_refused(
    forest_arrays: dict[str, Any],
) -> None:
    with pytest.raises(CompiledFormError):
        load_compiled(_saved({**forest_arrays, "classes": numpy.array([0, "x"], dtype=object)}))
    with pytest.raises(CompiledFormError):
        load_compiled(_saved(forest_arrays, compress=True))
    with pytest.raises(CompiledFormError):
        load_compiled(b"\x80\x04K\x01.")  # a pickle
    with zipfile.ZipFile(buffer := io.BytesIO(), "w") as archive:
        archive.writestr("meta.npy", b"not an array")
    with pytest.raises(CompiledFormError):
        load_compiled(buffer.getvalue())


def _with_children(arrays: dict[str, Any], node: int, left: int, right: int) -> dict[str, Any]:
    children = arrays["children"].copy()
    children[2 * node], children[2 * node + 1] = left, right
    return {**arrays, "children": children}


def test_forms_whose_walks_could_loop_or_share_nodes_are_refused(
    forest_arrays: dict[str, Any],
) -> None:
    """Work is bounded by the form's size only for separate, loop-free trees: a loop, a chain
    shared by many roots, a half-leaf or a depth beyond any tree is refused at load."""
    arrays = dict(forest_arrays)
    roots = arrays["roots"]
    meta = arrays["meta"]
    crafted = [
        {**arrays, "children": numpy.zeros_like(arrays["children"])},  # every node -> node 0
        {**arrays, "roots": numpy.zeros_like(roots)},  # five roots on one tree
        {**arrays, "roots": roots[::-1].copy()},
        _with_children(arrays, 0, 0, 1),  # a leaf on the left only
        _with_children(arrays, 1, 0, 2),  # back to an earlier node
        _with_children(arrays, 0, 1, int(roots[1]) + 1),  # into the next tree
        {
            **arrays,
            "meta": numpy.concatenate([meta[:3], [10**4 if meta[3] < 10**4 else 1], meta[4:]]),
        },
    ]
    for each in crafted:
        with pytest.raises(CompiledFormError):
            load_compiled(_saved(each))


def test_serving_a_compiled_form_imports_neither_scikit_learn_nor_pickle_loaders(
    tmp_path: Any,
) -> None:
    model = _fitted(RandomForestClassifier(n_estimators=10, random_state=0), MOONS)
    form = exact_form(model, None)
    assert form is not None
    (tmp_path / "form.npz").write_bytes(form.to_bytes())
    numpy.save(tmp_path / "rows.npy", MOONS[0][:25])
    script = (
        "import sys, numpy\n"
        "from registry.compiled import load_compiled\n"
        f"form = load_compiled(open({str(tmp_path / 'form.npz')!r}, 'rb').read())\n"
        f"print(form.predict(numpy.load({str(tmp_path / 'rows.npy')!r})).tolist())\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy', 'joblib'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()

    assert out[0] == str(model.predict(MOONS[0][:25]).tolist())
    assert out[1] == "[]"


@pytest.mark.parametrize("estimator", [*CLASSIFIERS, *REGRESSORS], ids=lambda e: type(e).__name__)
def test_the_walk_of_a_few_pairs_in_python_lands_where_numpys_does(estimator: Any) -> None:
    """A single row of a small model is walked in Python; both walks must agree everywhere."""
    features, target = DIABETES
    if type(estimator).__name__.endswith("Classifier"):
        target = target > numpy.median(target)
    model = _fitted(estimator, (features, target))
    form = _served(model)
    rows = form._rows(generated_rows(form, numpy.random.default_rng(11))[:200])

    assert numpy.array_equal(form._leaves_one_by_one(rows), form._leaves(rows))


def test_missing_values_take_the_same_way_in_both_walks() -> None:
    features, target = DIABETES
    with_missing = features.copy()
    with_missing[numpy.random.default_rng(2).random(features.shape) < 0.3] = numpy.nan
    model = HistGradientBoostingRegressor(max_iter=10, random_state=0).fit(with_missing, target)
    form = _served(model)
    rows = form._rows(with_missing)

    assert numpy.array_equal(form._leaves_one_by_one(rows), form._leaves(rows))
    one = with_missing[:1]
    assert numpy.array_equal(form.predict(one), model.predict(one))


def test_the_validators_comparison_tells_negative_zero_from_zero() -> None:
    from registry.artifacts import identical as _identical

    assert not _identical(numpy.array([0.0]), numpy.array([-0.0]))
    assert not _identical(numpy.array([1, 0]), numpy.array([1.0, 0.0]))  # another dtype
    assert _identical(numpy.array(["moon"], dtype=object), numpy.array(["moon"]))  # labels
