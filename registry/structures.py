"""The index arrays inside a loaded model that scikit-learn's compiled code follows unchecked.

A decision tree's nodes, a histogram boosting predictor's nodes and a neighbour tree's index
arrays are walked by Cython code that does not check bounds: a skops file whose arrays were
written by hand could make predict read outside them, and crash (skops itself leaves
sklearn.tree._tree.Tree out of its default trusted types for this reason). A file is a
trusted type only by its classes, so after loading one, these arrays are checked here, as
registry/compiled.py checks a compiled form: every child after its parent and inside the
node array (so a walk ends), every feature and index inside what it indexes.
"""

from typing import Any

import numpy
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
from sklearn.neighbors._ball_tree import BallTree
from sklearn.neighbors._kd_tree import KDTree
from sklearn.tree._tree import Tree

# The most objects a loaded model is walked through (a 1,000-tree forest holds a few thousand).
MAX_OBJECTS = 2_000_000


class MalformedStructure(ValueError):
    """An index array of the model points outside what it indexes."""


def check_structures(model: Any) -> None:
    """Raise MalformedStructure if a tree, histogram predictor or neighbour tree inside the
    model holds an index outside its arrays, or a feature beyond its estimator's columns."""
    seen: set[int] = set()
    pending: list[tuple[Any, int | None]] = [(model, None)]
    while pending:
        item, n_features = pending.pop()
        if id(item) in seen or isinstance(item, str | bytes | int | float | bool | type(None)):
            continue
        seen.add(id(item))
        if len(seen) > MAX_OBJECTS:
            raise MalformedStructure("the model holds too many objects to check")
        if isinstance(item, Tree):
            _check_tree(item, n_features)
        elif isinstance(item, TreePredictor):
            _check_predictor(item, n_features)
        elif isinstance(item, KDTree | BallTree):
            _check_neighbour_tree(item, n_features)
        elif isinstance(item, numpy.ndarray):
            if item.dtype == object:
                pending.extend((each, n_features) for each in item.ravel())
        elif isinstance(item, dict):
            pending.extend((each, n_features) for each in item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            pending.extend((each, n_features) for each in item)
        elif hasattr(item, "__dict__"):
            declared = getattr(item, "n_features_in_", None)
            columns = int(declared) if isinstance(declared, int | numpy.integer) else n_features
            pending.extend((each, columns) for each in vars(item).values())


def _check_children(left: Any, right: Any, leaf: Any) -> None:
    """Children of an inner node come after it and inside the array; a leaf has none."""
    count = len(left)
    index = numpy.arange(count)
    inner = ~leaf
    for child in (left[inner], right[inner]):
        if not ((child > index[inner]).all() and (child < count).all()):
            raise MalformedStructure("a node's child is outside the tree, or not after it")


def _check_feature(feature: Any, n_features: int | None) -> None:
    if len(feature) and (
        feature.min() < 0 or (n_features is not None and feature.max() >= n_features)
    ):
        raise MalformedStructure("a node splits on a feature the model does not have")


def _check_tree(tree: Any, n_features: int | None) -> None:
    state = tree.__getstate__()
    nodes, count = state["nodes"], int(state["node_count"])
    if len(nodes) != count or state["values"].shape[0] != count:
        raise MalformedStructure("a tree's arrays do not hold its node count")
    leaf = nodes["left_child"] == -1
    if not (nodes["right_child"][leaf] == -1).all():
        raise MalformedStructure("a tree's leaf has a child")
    _check_children(nodes["left_child"], nodes["right_child"], leaf)
    features = int(tree.n_features) if n_features is None else min(int(tree.n_features), n_features)
    _check_feature(nodes["feature"][~leaf], features)


def _check_predictor(predictor: Any, n_features: int | None) -> None:
    nodes = predictor.nodes
    leaf = nodes["is_leaf"].astype(bool)
    _check_children(nodes["left"].astype(numpy.int64), nodes["right"].astype(numpy.int64), leaf)
    _check_feature(nodes["feature_idx"][~leaf].astype(numpy.int64), n_features)
    categorical = ~leaf & nodes["is_categorical"].astype(bool)
    bitsets = min(len(predictor.raw_left_cat_bitsets), len(predictor.binned_left_cat_bitsets))
    if categorical.any() and nodes["bitset_idx"][categorical].max() >= bitsets:
        raise MalformedStructure("a categorical split's bitset is outside the predictor")


def _check_neighbour_tree(tree: Any, n_features: int | None) -> None:
    data, indices, node_data = tree.__getstate__()[:3]
    if data.ndim != 2 or (n_features is not None and data.shape[1] != n_features):
        raise MalformedStructure("a neighbour tree's data does not have the model's columns")
    if len(indices) != len(data) or (
        len(indices) and not (0 <= indices.min() <= indices.max() < len(data))
    ):
        raise MalformedStructure("a neighbour tree's index points outside its data")
    starts, ends = node_data["idx_start"], node_data["idx_end"]
    if len(node_data) and not ((starts >= 0) & (starts <= ends) & (ends <= len(indices))).all():
        raise MalformedStructure("a neighbour tree's node points outside its index")
