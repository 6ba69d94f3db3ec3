"""Models and their bytes, as tests need them: one joblib helper, distinct small models."""

import io
from typing import Any

import joblib
import numpy
from sklearn.linear_model import LogisticRegression


def joblib_of(value: Any) -> bytes:
    """What joblib.dump writes for the value (an estimator, or any object to unpickle)."""
    buffer = io.BytesIO()
    joblib.dump(value, buffer)
    return buffer.getvalue()


def distinct_model_bytes(seed: int) -> bytes:
    """A small fitted classifier whose bytes differ for every seed."""
    rng = numpy.random.default_rng(seed)
    features = rng.normal(size=(20, 2))
    labels = (features[:, 0] > 0).astype(int)
    labels[:2] = [0, 1]
    return joblib_of(LogisticRegression().fit(features, labels))
