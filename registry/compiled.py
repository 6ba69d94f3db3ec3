"""Tree ensembles as plain numpy arrays: made by the validator, served without scikit-learn.

A compiled form is a .npz archive of numeric arrays (no object arrays, nothing pickled),
loaded with numpy.load(allow_pickle=False). Every tree of the ensemble is laid out in
one set of node arrays; a leaf points to itself, so walking every tree for every row a
fixed number of steps (the deepest tree's depth) lands each on its leaf, in one numpy
operation per step for all trees and rows at once: a single row does not pay a call
per tree.

The answers are scikit-learn's to the last bit, by doing what it does in the same order:
- DecisionTree, RandomForest and ExtraTrees (and GradientBoosting) round the rows to
  float32 and compare them with float64 thresholds; HistGradientBoosting compares float64;
- leaf values are summed tree after tree (a cumulative sum, never numpy's pairwise sum),
  starting from zero for forests and from the baseline for boosting, then a forest divides
  by its number of trees;
- GradientBoosting's leaves are scaled by the learning rate as its predict_stages does
  (scale * value, in float64), HistGradientBoosting's already are;
- probabilities go through the same numpy softmax as scikit-learn's, on an array of the
  same memory layout, and the same logistic function as scipy's expit.

The validator keeps a compiled form only when it gave scikit-learn's own predictions on
the registrant's example and on generated rows (thresholds, their float32 neighbours, random
and missing values); any other model keeps the pickle path.

load_compiled checks every array's type and shape, and that every node's feature and
children and every tree's root stay inside the arrays, so a crafted form cannot read
outside them; the walk's fixed number of steps bounds its work even if its trees loop.
"""

import io
import math
import zipfile
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from typing import Any

import numpy

FORM_VERSION = 1
# (row, tree) pairs walked at once: large enough that each numpy call does real work, small
# enough that the walk's arrays stay in the CPU's cache (measured in docs/benchmarks.md).
PAIRS_PER_CHUNK = 16384
SET_ASIDE_EVERY = 6  # steps between setting aside the pairs that reached a leaf
# At most this many (row, tree) pairs are walked one by one in Python rather than by numpy,
# in a model of at most so many nodes (the walk's Python lists take ~180 bytes a node).
FEW_PAIRS = 16
NODES_WALKED_IN_PYTHON = 65536
SET_ASIDE_FROM = 64  # pairs still walking: fewer are walked on without sorting them out
MAX_DEPTH = 4096
# The arrays of a form, and the dtype each must have when loaded.
_ARRAYS = {
    "meta": numpy.dtype(numpy.int64),
    "feature": numpy.dtype(numpy.int32),
    "threshold": numpy.dtype(numpy.float64),
    "children": numpy.dtype(numpy.int32),
    "missing_left": numpy.dtype(numpy.bool_),
    "value": numpy.dtype(numpy.float64),
    "roots": numpy.dtype(numpy.int32),
    "baseline": numpy.dtype(numpy.float64),
}


class Kind(IntEnum):
    """How leaf values become predictions, after scikit-learn's own predict of the family."""

    FOREST_CLASSIFIER = 1  # DecisionTree, RandomForest, ExtraTrees: mean of class fractions
    FOREST_REGRESSOR = 2
    GRADIENT_BOOSTING_CLASSIFIER = 3  # baseline + learning_rate * leaves; label: raw >= 0
    GRADIENT_BOOSTING_REGRESSOR = 4
    HIST_GRADIENT_BOOSTING_CLASSIFIER = 5  # baseline + leaves; label: raw > 0
    HIST_GRADIENT_BOOSTING_REGRESSOR = 6


_CLASSIFIERS = frozenset(
    {
        Kind.FOREST_CLASSIFIER,
        Kind.GRADIENT_BOOSTING_CLASSIFIER,
        Kind.HIST_GRADIENT_BOOSTING_CLASSIFIER,
    }
)
_FORESTS = frozenset({Kind.FOREST_CLASSIFIER, Kind.FOREST_REGRESSOR})


class CompiledFormError(ValueError):
    """The bytes are not a compiled form this runtime can serve."""


@dataclass(frozen=True)
class _Walk:
    """The node arrays as the walk reads them: indexed by 2 * node (+1 for the right child)."""

    feature: Any
    threshold: Any
    missing_right: Any
    children: Any
    roots: Any


@dataclass(frozen=True, eq=False)
class CompiledTrees:
    """A tree ensemble's nodes and how to turn its leaves into scikit-learn's answers.

    children[node] holds (left, right); a leaf's are itself. value[node] is a leaf's
    contribution (width values per tree); trees are ordered stage by stage, and a stage
    holds trees_per_stage trees, one per output of a boosting model (one for a forest).
    """

    kind: Kind
    n_features: int
    max_depth: int
    trees_per_stage: int
    float32_inputs: bool
    allow_nan: bool
    feature: Any
    threshold: Any
    children: Any
    missing_left: Any
    value: Any
    roots: Any
    baseline: Any
    classes: Any | None

    @cached_property
    def _walk(self) -> "_Walk":
        return _Walk(
            feature=numpy.repeat(self.feature, 2),
            threshold=numpy.repeat(self.threshold, 2),
            missing_right=numpy.repeat(~self.missing_left, 2),
            children=self.children * 2,
            roots=self.roots * 2,
        )

    @property
    def n_trees(self) -> int:
        return int(self.roots.shape[0])

    @property
    def is_classifier(self) -> bool:
        return self.kind in _CLASSIFIERS

    # -- serving --------------------------------------------------------------------------

    def predict(self, features: Any) -> Any:
        raw = self._raw(features)
        kind = self.kind
        if kind is Kind.FOREST_CLASSIFIER:
            assert self.classes is not None
            return self.classes.take(numpy.argmax(raw / self.n_trees, axis=1), axis=0)
        if kind is Kind.FOREST_REGRESSOR:
            return raw[:, 0] / self.n_trees
        if kind in (Kind.GRADIENT_BOOSTING_REGRESSOR, Kind.HIST_GRADIENT_BOOSTING_REGRESSOR):
            return raw.ravel()
        assert self.classes is not None
        if raw.shape[1] == 1:
            # GradientBoosting takes a raw score of 0 as positive, HistGradientBoosting not.
            scores = raw.ravel()
            positive = scores >= 0 if kind is Kind.GRADIENT_BOOSTING_CLASSIFIER else scores > 0
            return self.classes[positive.astype(int)]
        return self.classes[numpy.argmax(raw, axis=1)]

    def predict_proba(self, features: Any) -> Any:
        raw = self._raw(features)
        if self.kind is Kind.FOREST_CLASSIFIER:
            raw /= self.n_trees
            return raw
        if raw.shape[1] == 1:
            proba = numpy.empty((raw.shape[0], 2), dtype=numpy.float64)
            proba[:, 1] = _expit(raw.ravel())
            proba[:, 0] = 1 - proba[:, 1]
            return proba
        if self.kind is Kind.HIST_GRADIENT_BOOSTING_CLASSIFIER:
            raw = numpy.asfortranarray(raw)  # HistGradientBoosting's raw predictions are
        return _softmax(raw)  # Fortran-ordered; the sums of the softmax follow the layout

    def _rows(self, features: Any) -> Any:
        """The rows as scikit-learn compares them: float32-rounded (as float64) or float64."""
        if self.float32_inputs:
            with numpy.errstate(over="ignore"):  # too large for float32: refused just below
                rows32 = numpy.asarray(features, dtype=numpy.float32)
            self._check_rows(rows32)
            rows = rows32.astype(numpy.float64)
        else:
            rows = numpy.asarray(features, dtype=numpy.float64)
            self._check_rows(rows)
        return numpy.ascontiguousarray(rows)

    def _check_rows(self, rows: Any) -> None:
        # scikit-learn's own errors (ValueError), so predict answers as it would for them.
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            shape = rows.shape[1] if rows.ndim == 2 else rows.ndim
            raise ValueError(f"X has {shape} features, but the model takes {self.n_features}")
        if self.float32_inputs and not numpy.isfinite(rows).all():
            if not self.allow_nan or numpy.isinf(rows).any():
                raise ValueError("Input X contains infinity, NaN or a value too large for float32.")
        elif not self.allow_nan and numpy.isnan(rows).any():
            raise ValueError("Input X contains NaN.")

    def _raw(self, features: Any) -> Any:
        """Sums of the leaves per output, in scikit-learn's order: shape (rows, outputs)."""
        rows = self._rows(features)
        width = self.value.shape[1] * self.trees_per_stage
        out = numpy.empty((rows.shape[0], width), dtype=numpy.float64)
        rows_per_chunk = max(1, PAIRS_PER_CHUNK // self.n_trees)
        for start in range(0, rows.shape[0], rows_per_chunk):
            chunk = rows[start : start + rows_per_chunk]
            few = chunk.shape[0] * self.n_trees <= FEW_PAIRS
            small = self.feature.shape[0] <= NODES_WALKED_IN_PYTHON
            leaves = self._leaves_one_by_one(chunk) if few and small else self._leaves(chunk)
            out[start : start + chunk.shape[0]] = self._sums(leaves, width)
        return out

    def _leaves_one_by_one(self, rows: Any) -> Any:
        """_leaves for a few (row, tree) pairs, walked in Python: the same comparisons of the
        same doubles, without a dozen numpy calls a step (the blog's single row: 5 pairs)."""
        feature, threshold, missing_right, children, roots = self._walk_lists
        leaves = []
        for row in rows.tolist():
            for state in roots:
                for _ in range(self.max_depth):
                    x = row[feature[state]]
                    go_right = missing_right[state] if x != x else x > threshold[state]
                    state = children[state + go_right]
                leaves.append(state >> 1)
        return numpy.array(leaves, dtype=numpy.intp).reshape(rows.shape[0], self.n_trees)

    @cached_property
    def _walk_lists(self) -> tuple[list[Any], ...]:
        walk = self._walk
        return (
            walk.feature.tolist(),
            walk.threshold.tolist(),
            walk.missing_right.tolist(),
            walk.children.tolist(),
            walk.roots.tolist(),
        )

    def _leaves(self, rows: Any) -> Any:
        """Each row's leaf in each tree: (rows, trees) node indices.

        The walk keeps 2 * node, so that a node's two children sit at children[2 * node]
        and children[2 * node + 1] and one take() picks the branch; the feature and threshold
        arrays are repeated to be read at the same index. Indices are in bounds by
        load_compiled's checks; mode="clip" keeps them so whatever the arrays hold. Every
        few steps, the (row, tree) pairs that reached their leaf are set aside, so deep
        trees do not walk every pair to the deepest leaf.
        """
        walk = self._walk
        n_rows, n_features = rows.shape
        flat = rows.ravel()
        # Flat (row, tree) pairs, row after row: where each pair's row starts in flat.
        offsets = numpy.repeat(numpy.arange(0, n_rows * n_features, n_features), self.n_trees)
        state = numpy.tile(walk.roots, n_rows)
        done, moving = state, None  # done[moving] is where the pairs still walking go
        has_nan = self.allow_nan and bool(numpy.isnan(flat).any())
        for step in range(1, self.max_depth + 1):
            index = walk.feature.take(state, mode="clip")
            index += offsets
            x = flat.take(index, mode="clip")
            threshold = walk.threshold.take(state, mode="clip")
            if has_nan:
                # NaN <= threshold is False: a missing value goes where its node says.
                go_right = numpy.where(
                    numpy.isnan(x), walk.missing_right.take(state), x > threshold
                )
                numpy.add(state, go_right, out=index)
            else:
                numpy.greater(x, threshold, out=index)
                index += state
            walk.children.take(index, out=state, mode="clip")
            if (
                step % SET_ASIDE_EVERY == 0
                and step < self.max_depth
                and state.size >= SET_ASIDE_FROM
            ):
                walking = walk.children.take(state, mode="clip") != state
                if moving is None:
                    done, moving = state.copy(), numpy.flatnonzero(walking)
                else:
                    done[moving] = state
                    moving = moving[walking]
                state, offsets = state[walking], offsets[walking]
                if state.size == 0:
                    break
        if moving is not None:
            done[moving] = state
        return (done >> 1).reshape(n_rows, self.n_trees)

    def _sums(self, leaves: Any, width: int) -> Any:
        n_rows = leaves.shape[0]
        stages = self.n_trees // self.trees_per_stage
        terms = self.value.take(leaves, axis=0).reshape(n_rows, stages, width)
        # From the baseline, as scikit-learn: zeros for a forest (so -0.0 leaves sum to 0.0).
        terms[:, 0, :] += self.baseline
        # Added in order, one stage after another, as scikit-learn does (never numpy's
        # pairwise sum): a loop over stages for many rows, a cumulative sum for few.
        if n_rows < stages:
            return numpy.cumsum(terms, axis=1)[:, -1, :]
        total = terms[:, 0, :].copy()
        for stage in range(1, stages):
            total += terms[:, stage, :]
        return total

    # -- storing ----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        meta = numpy.array(
            [
                FORM_VERSION,
                int(self.kind),
                self.n_features,
                self.max_depth,
                self.trees_per_stage,
                int(self.float32_inputs),
                int(self.allow_nan),
            ],
            dtype=numpy.int64,
        )
        arrays = {
            "meta": meta,
            "feature": self.feature.astype(numpy.int32),
            "threshold": self.threshold,
            "children": self.children.astype(numpy.int32),
            "missing_left": self.missing_left,
            "value": self.value,
            "roots": self.roots.astype(numpy.int32),
            "baseline": self.baseline,
        }
        if self.classes is not None:
            arrays["classes"] = self.classes
        buffer = io.BytesIO()
        numpy.savez(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()


def load_compiled(data: bytes) -> CompiledTrees:
    """A compiled form from its bytes; CompiledFormError unless every index stays in bounds."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
        if any(m.compress_type != zipfile.ZIP_STORED for m in members):
            raise CompiledFormError("a compiled form's arrays are stored uncompressed")
        loaded = numpy.load(io.BytesIO(data), allow_pickle=False)
        arrays = {name: loaded[name] for name in loaded.files}
        if not all(isinstance(array, numpy.ndarray) for array in arrays.values()):
            raise CompiledFormError("a compiled form holds arrays only")
    except CompiledFormError:
        raise
    except Exception as exc:  # not an archive of plain arrays
        raise CompiledFormError(f"not a compiled form ({type(exc).__name__})") from None
    for name, dtype in _ARRAYS.items():
        if name not in arrays or arrays[name].dtype != dtype:
            raise CompiledFormError(f"array {name!r} is missing or not {dtype}")
    meta = arrays["meta"]
    if meta.shape != (7,) or int(meta[0]) != FORM_VERSION:
        raise CompiledFormError("unknown compiled form version")
    try:
        kind = Kind(int(meta[1]))
    except ValueError:
        raise CompiledFormError("unknown kind of ensemble") from None
    n_features, max_depth, trees_per_stage = (int(value) for value in meta[2:5])
    feature, threshold = arrays["feature"], arrays["threshold"]
    children, missing_left = arrays["children"], arrays["missing_left"]
    value, roots, baseline = arrays["value"], arrays["roots"], arrays["baseline"]
    n_nodes = feature.shape[0] if feature.ndim == 1 else -1
    checks = [
        n_nodes > 0 and n_features > 0 and 0 <= max_depth <= MAX_DEPTH,
        threshold.shape == (n_nodes,) and missing_left.shape == (n_nodes,),
        children.shape == (n_nodes * 2,),
        value.ndim == 2 and value.shape[0] == n_nodes and value.shape[1] > 0,
        roots.ndim == 1 and roots.shape[0] > 0,
        trees_per_stage > 0 and roots.shape[0] % max(trees_per_stage, 1) == 0,
        baseline.ndim == 1 and baseline.shape[0] == value.shape[1] * trees_per_stage,
    ]
    if not all(checks):
        raise CompiledFormError("the arrays' shapes do not agree")
    if not (
        _within(feature, n_features) and _within(children, n_nodes) and _within(roots, n_nodes)
    ):
        raise CompiledFormError("a node index, child or feature is out of bounds")
    largest_tree = _checked_trees(children, roots)
    if max_depth > largest_tree:
        raise CompiledFormError("deeper than its largest tree has nodes")
    classes = arrays.get("classes")
    if (kind in _CLASSIFIERS) != (classes is not None):
        raise CompiledFormError("a classifier's form holds its classes, a regressor's none")
    if classes is not None:
        outputs = value.shape[1] * trees_per_stage
        expected = outputs if kind is Kind.FOREST_CLASSIFIER else max(outputs, 2)
        if classes.ndim != 1 or classes.shape[0] != expected or classes.dtype.kind not in "biufU":
            raise CompiledFormError("the classes do not match the outputs")
    if kind in _FORESTS and trees_per_stage != 1:
        raise CompiledFormError("a forest has one tree per stage")
    return CompiledTrees(
        kind=kind,
        n_features=n_features,
        max_depth=max_depth,
        trees_per_stage=trees_per_stage,
        float32_inputs=bool(meta[5]),
        allow_nan=bool(meta[6]),
        feature=feature.astype(numpy.intp),
        threshold=threshold,
        children=children.astype(numpy.intp),
        missing_left=missing_left,
        value=value,
        roots=roots.astype(numpy.intp),
        baseline=baseline,
        classes=classes,
    )


def _checked_trees(children: Any, roots: Any) -> int:
    """The node count of the largest tree, once the nodes are proved separate, loop-free trees.

    Trees lie one after another (the first at node 0, roots strictly increasing); a leaf's
    two children are itself, and any other node's are later nodes of its own tree, as
    scikit-learn numbers them. So no walk revisits a node, and a (row, tree) pair takes at
    most as many steps as its tree has nodes: the work a form asks for is bounded by its size.
    """
    n_nodes = children.shape[0] // 2
    if int(roots[0]) != 0 or (roots.shape[0] > 1 and not (numpy.diff(roots) > 0).all()):
        raise CompiledFormError("trees must follow one another from node 0")
    nodes = numpy.arange(n_nodes)
    ends = numpy.append(roots[1:], n_nodes)
    tree_end = ends[numpy.searchsorted(roots, nodes, side="right") - 1]
    left, right = children[0::2], children[1::2]
    leaf = (left == nodes) & (right == nodes)
    split = (left > nodes) & (right > nodes) & (left < tree_end) & (right < tree_end)
    if not (leaf | split).all():
        raise CompiledFormError("a node's children are neither itself nor later nodes of its tree")
    return int((ends - roots).max())


def _within(indices: Any, size: int) -> bool:
    return bool(indices.size == 0 or (indices.min() >= 0 and indices.max() < size))


def _softmax(raw: Any) -> Any:
    """scikit-learn's softmax (sklearn.utils.extmath.softmax), step for step."""
    values = numpy.asarray(raw, copy=True)
    values -= numpy.reshape(numpy.max(values, axis=1), (-1, 1))
    numpy.exp(values, out=values)
    values /= numpy.reshape(numpy.sum(values, axis=1), (-1, 1))
    return values


def _expit(raw: Any) -> Any:
    """scipy.special.expit: 1 / (1 + exp(-x)) with the C library's exp, as scipy computes it."""
    return numpy.fromiter(map(_logistic, raw.tolist()), dtype=numpy.float64, count=raw.shape[0])


def _logistic(x: float) -> float:
    try:
        return 1.0 / (1.0 + math.exp(-x))
    except OverflowError:  # exp(-x) is infinite: scipy's answer is 1 / inf
        return 0.0
