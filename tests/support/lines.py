"""Models trained in an older runtime line's interpreter (.venv-lines/1.8 and 1.7, which make
test installs), and their answers computed there, in that scikit-learn."""

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# Run by the line's interpreter: trains on data scikit-learn ships, and prints each model's
# joblib bytes, skops bytes and answers on the test rows, computed in that scikit-learn.
TRAIN_IN_LINE = r"""
import base64, io, json, sys
import joblib, numpy, sklearn, skops.io
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder

features, target = load_wine(return_X_y=True)
rows = features[::7]
wine = load_wine(as_frame=True)
table = wine.data[["alcohol", "malic_acid", "proline"]].copy()
table["cellar"] = ["north", "south", "east"] * 59 + ["north"]
table.loc[::10, "malic_acid"] = None
pipeline = make_pipeline(
    make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["cellar"]),
        (SimpleImputer(), ["alcohol", "malic_acid", "proline"]),
    ),
    HistGradientBoostingClassifier(max_iter=20, random_state=0),
).fit(table, wine.target)
records = table.iloc[::7].astype(object).where(table.iloc[::7].notna(), None)
models = {
    "forest": (RandomForestClassifier(n_estimators=20, random_state=0).fit(features, target), rows),
    "linear": (
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, target),
        rows,
    ),
    "frame": (pipeline, table.iloc[::7]),
}
out = {"sklearn": sklearn.__version__, "rows": rows.tolist()}
out["records"] = records.to_dict(orient="records")
for name, (model, test_rows) in models.items():
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    compressed = io.BytesIO()
    joblib.dump(model, compressed, compress=3)  # hides its version from a look at the bytes
    out[name] = {
        "compressed": base64.b64encode(compressed.getvalue()).decode(),
        "joblib": base64.b64encode(buffer.getvalue()).decode(),
        "skops": base64.b64encode(skops.io.dumps(model)).decode(),
        "predictions": model.predict(test_rows).tolist(),
        "probabilities": model.predict_proba(test_rows).tolist(),
    }
print(json.dumps(out))
"""


def line_python(minor: str = "1.8") -> str:
    """An older line's interpreter (TEST_LINE_PYTHONS, "1.8=PATH 1.7=PATH", set by make test)."""
    given = dict(pair.split("=", 1) for pair in os.environ.get("TEST_LINE_PYTHONS", "").split())
    python = given.get(minor) or str(REPO_ROOT / f".venv-lines/{minor}/bin/python")
    if not Path(python).exists():
        pytest.fail(
            f"no runtime line at {python}: run `make test` (it installs .venv-lines/{minor})"
        )
    return python


@functools.cache
def trained_in(python: str) -> dict[str, Any]:
    """Each model's joblib, compressed joblib and skops bytes (base64), and its answers on
    the test rows, from that interpreter's scikit-learn."""
    done = subprocess.run(
        [python, "-c", TRAIN_IN_LINE], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trained: dict[str, Any] = json.loads(done.stdout)
    return trained
