"""The validator's side of compiled forms: read a fitted tree ensemble into numpy arrays,
and keep the form only if it answers exactly as scikit-learn does.

Runs in the validator's sandboxed child, next to the loaded estimator; predict only
ever loads the result (registry/compiled.py), never this module.
"""

from collections.abc import Callable
from typing import Any

import numpy

from registry.artifacts import identical
from registry.compiled import MAX_DEPTH, CompiledTrees, Kind

# Rows generated to compare the form with scikit-learn, besides the registrant's example.
GENERATED_ROWS = 2048
MISSING_ROWS = 512
# Larger ensembles keep the pickle path: the node arrays would outgrow predict's memory.
MAX_NODES = 20_000_000
# Values generated stay well inside float32's range (a float32 model refuses infinities).
LARGEST_VALUE = 1e37


def compile_estimator(estimator: Any) -> CompiledTrees | None:
    """The estimator's compiled form, or None for a model outside the families compiled."""
    cls = type(estimator)
    if not cls.__module__.startswith("sklearn.") or getattr(estimator, "n_outputs_", 1) != 1:
        return None
    compiler = _COMPILERS.get(cls.__name__)
    return compiler(estimator) if compiler is not None else None


def exact_form(estimator: Any, example: Any | None, seed: int = 0) -> CompiledTrees | None:
    """The compiled form, if it gives the estimator's own predictions (and probabilities)
    bit for bit on the example and on generated rows; None otherwise."""
    try:
        form = compile_estimator(estimator)
    except Exception:  # an estimator whose arrays are not what its class promises
        return None
    if form is None:
        return None
    rows = generated_rows(form, numpy.random.default_rng(seed))
    allow_nan = _accepts(estimator, rows[:1] * numpy.nan)
    form = _with_allow_nan(form, allow_nan)
    checks = [rows]
    if allow_nan:
        checks.append(_with_missing(rows[:MISSING_ROWS], numpy.random.default_rng(seed + 1)))
    if example is not None:
        checks.append(example)
    for features in checks:
        if not _same_answers(form, estimator, features):
            return None
    return form


def _same_answers(form: CompiledTrees, estimator: Any, features: Any) -> bool:
    methods = ["predict", "predict_proba"] if form.is_classifier else ["predict"]
    for method in methods:
        try:
            expected = getattr(estimator, method)(features)
            got = getattr(form, method)(features)
        except Exception:  # rows chosen to be answered: a refusal proves nothing
            return False
        if not identical(expected, got):
            return False
    return True


def _accepts(estimator: Any, rows: Any) -> bool:
    try:
        estimator.predict(rows)
    except Exception:
        return False
    return True


def generated_rows(form: CompiledTrees, rng: numpy.random.Generator) -> Any:
    """Rows whose values sit on the trees' thresholds, next to them (as float32 rounds
    them), and anywhere around them."""
    n_features = form.n_features
    rows = numpy.empty((GENERATED_ROWS, n_features), dtype=numpy.float64)
    split = form.children[0::2] != numpy.arange(form.feature.shape[0])
    for column in range(n_features):
        thresholds = form.threshold[split & (form.feature == column)]
        thresholds = thresholds[numpy.abs(thresholds) < LARGEST_VALUE]
        if thresholds.size == 0:
            rows[:, column] = rng.normal(size=GENERATED_ROWS)
            continue
        low, high = float(thresholds.min()), float(thresholds.max())
        margin = max(high - low, 1.0)
        as32 = thresholds.astype(numpy.float32)
        candidates = numpy.concatenate(
            [
                thresholds,
                as32.astype(numpy.float64),
                numpy.nextafter(as32, numpy.float32(numpy.inf)).astype(numpy.float64),
                numpy.nextafter(as32, numpy.float32(-numpy.inf)).astype(numpy.float64),
                numpy.nextafter(thresholds, numpy.inf),
                rng.uniform(low - margin, high + margin, size=thresholds.size),
            ]
        )
        rows[:, column] = rng.choice(candidates, size=GENERATED_ROWS)
    return rows


def _with_missing(rows: Any, rng: numpy.random.Generator) -> Any:
    missing = rows.copy()
    missing[rng.random(missing.shape) < 0.2] = numpy.nan
    return missing


def _with_allow_nan(form: CompiledTrees, allow_nan: bool) -> CompiledTrees:
    fields = {name: getattr(form, name) for name in CompiledTrees.__dataclass_fields__}
    return CompiledTrees(**{**fields, "allow_nan": allow_nan})


# -- reading scikit-learn's trees --------------------------------------------------------


class _Nodes:
    """Trees appended one after another into the form's node arrays."""

    def __init__(self) -> None:
        self.feature: list[Any] = []
        self.threshold: list[Any] = []
        self.children: list[Any] = []
        self.missing_left: list[Any] = []
        self.value: list[Any] = []
        self.roots: list[int] = []
        self.size = 0
        self.max_depth = 0

    def add(
        self,
        left: Any,
        right: Any,
        feature: Any,
        threshold: Any,
        missing_left: Any,
        value: Any,
        depth: int,
    ) -> None:
        """One tree: left/right children (a leaf's are -1 or point to itself), local indices."""
        count = left.shape[0]
        local = numpy.arange(count)
        leaf = (left < 0) | (left == local)
        left = numpy.where(leaf, local, left) + self.size
        right = numpy.where(leaf, local, right) + self.size
        self.feature.append(numpy.where(leaf, 0, feature))
        self.threshold.append(numpy.where(leaf, 0.0, threshold).astype(numpy.float64))
        self.children.append(numpy.stack([left, right], axis=1).ravel())
        self.missing_left.append(numpy.asarray(missing_left, dtype=bool))
        self.value.append(numpy.asarray(value, dtype=numpy.float64))
        self.roots.append(self.size)
        self.size += count
        self.max_depth = max(self.max_depth, depth)
        if self.size > MAX_NODES or self.max_depth > MAX_DEPTH:
            raise ValueError("too many nodes, or too deep, to compile")

    def form(self, kind: Kind, estimator: Any, **fields: Any) -> CompiledTrees:
        classes = getattr(estimator, "classes_", None)
        if classes is not None:
            classes = numpy.asarray(classes)
            if classes.dtype.kind == "O":
                if not all(isinstance(label, str) for label in classes):
                    raise ValueError("labels a compiled form cannot hold")
                classes = classes.astype(str)
        return CompiledTrees(
            kind=kind,
            n_features=int(estimator.n_features_in_),
            max_depth=self.max_depth,
            feature=numpy.concatenate(self.feature).astype(numpy.intp),
            threshold=numpy.concatenate(self.threshold),
            children=numpy.concatenate(self.children).astype(numpy.intp),
            missing_left=numpy.concatenate(self.missing_left),
            value=numpy.ascontiguousarray(numpy.concatenate(self.value)),
            roots=numpy.asarray(self.roots, dtype=numpy.intp),
            classes=classes,
            allow_nan=False,
            **fields,
        )


def _add_tree(nodes: _Nodes, tree: Any, value: Any) -> None:
    """A scikit-learn Tree (tree_), with the values its leaves contribute."""
    nodes.add(
        tree.children_left,
        tree.children_right,
        tree.feature,
        tree.threshold,
        tree.missing_go_to_left,
        value,
        int(tree.max_depth),
    )


def _forest(estimator: Any, kind: Kind) -> CompiledTrees:
    trees = getattr(estimator, "estimators_", [estimator])
    if getattr(estimator, "n_jobs", None) not in (None, 1):
        raise ValueError("trees summed by several jobs are summed in no fixed order")
    nodes = _Nodes()
    for tree in trees:
        if kind is Kind.FOREST_CLASSIFIER:
            value = tree.tree_.value[:, 0, : int(estimator.n_classes_)]
        else:
            value = tree.tree_.value[:, 0, :1]
        _add_tree(nodes, tree.tree_, value)
    width = nodes.value[0].shape[1]
    return nodes.form(
        kind,
        estimator,
        trees_per_stage=1,
        float32_inputs=True,
        baseline=numpy.zeros(width),
    )


def _gradient_boosting(estimator: Any, kind: Kind) -> CompiledTrees:
    init = estimator.init_
    if not (isinstance(init, str) and init == "zero") and type(init).__name__ not in (
        "DummyClassifier",
        "DummyRegressor",
    ):
        raise ValueError("an init estimator whose predictions depend on the row")
    stages = estimator.estimators_
    n_features = int(estimator.n_features_in_)
    baseline = estimator._raw_predict_init(numpy.zeros((1, n_features), numpy.float32))[0]
    scale = float(estimator.learning_rate)
    nodes = _Nodes()
    for stage in stages:
        for tree in stage:
            _add_tree(nodes, tree.tree_, scale * tree.tree_.value[:, 0, :1])
    return nodes.form(
        kind,
        estimator,
        trees_per_stage=int(stages.shape[1]),
        float32_inputs=True,
        baseline=numpy.asarray(baseline, dtype=numpy.float64),
    )


def _hist_gradient_boosting(estimator: Any, kind: Kind) -> CompiledTrees:
    if getattr(estimator, "_preprocessor", None) is not None:
        raise ValueError("categories encoded by the model's own preprocessor")
    regressor = kind is Kind.HIST_GRADIENT_BOOSTING_REGRESSOR
    if regressor and type(estimator._loss.link).__name__ != "IdentityLink":
        raise ValueError("a link other than the identity")
    nodes = _Nodes()
    for iteration in estimator._predictors:
        for predictor in iteration:
            array = predictor.nodes
            if array["is_categorical"].any():
                raise ValueError("categorical splits")
            leaf = array["is_leaf"].astype(bool)
            left = numpy.where(leaf, -1, array["left"].astype(numpy.intp))
            right = numpy.where(leaf, -1, array["right"].astype(numpy.intp))
            nodes.add(
                left,
                right,
                array["feature_idx"].astype(numpy.intp),
                array["num_threshold"],
                array["missing_go_to_left"].astype(bool),
                array["value"].reshape(-1, 1),
                int(array["depth"].max()),
            )
    return nodes.form(
        kind,
        estimator,
        trees_per_stage=int(estimator.n_trees_per_iteration_),
        float32_inputs=False,
        # scikit-learn adds the baseline to zeros: a -0.0 baseline counts as 0.0.
        baseline=numpy.asarray(estimator._baseline_prediction, dtype=numpy.float64).ravel() + 0.0,
    )


def _family(build: Callable[[Any, Kind], CompiledTrees], kind: Kind) -> Any:
    return lambda estimator: build(estimator, kind)


_COMPILERS: dict[str, Callable[[Any], CompiledTrees]] = {
    "DecisionTreeClassifier": _family(_forest, Kind.FOREST_CLASSIFIER),
    "ExtraTreeClassifier": _family(_forest, Kind.FOREST_CLASSIFIER),
    "RandomForestClassifier": _family(_forest, Kind.FOREST_CLASSIFIER),
    "ExtraTreesClassifier": _family(_forest, Kind.FOREST_CLASSIFIER),
    "DecisionTreeRegressor": _family(_forest, Kind.FOREST_REGRESSOR),
    "ExtraTreeRegressor": _family(_forest, Kind.FOREST_REGRESSOR),
    "RandomForestRegressor": _family(_forest, Kind.FOREST_REGRESSOR),
    "ExtraTreesRegressor": _family(_forest, Kind.FOREST_REGRESSOR),
    "GradientBoostingClassifier": _family(_gradient_boosting, Kind.GRADIENT_BOOSTING_CLASSIFIER),
    "GradientBoostingRegressor": _family(_gradient_boosting, Kind.GRADIENT_BOOSTING_REGRESSOR),
    "HistGradientBoostingClassifier": _family(
        _hist_gradient_boosting, Kind.HIST_GRADIENT_BOOSTING_CLASSIFIER
    ),
    "HistGradientBoostingRegressor": _family(
        _hist_gradient_boosting, Kind.HIST_GRADIENT_BOOSTING_REGRESSOR
    ),
}
