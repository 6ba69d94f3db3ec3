"""Train the blog's example model and save or register it.

RandomForestClassifier(n_estimators=5, random_state=0) on
make_moons(n_samples=100, noise=0.25, random_state=3), split with
train_test_split(stratify=y, random_state=42), exactly as the blog did.
"""

import argparse
import io
import sys
from pathlib import Path
from typing import Any

import joblib
from sklearn.datasets import make_moons
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registry.http import service

EXAMPLE_MODEL_NAME = "moons"


def train_moons(n_estimators: int = 5) -> Any:
    features, labels = make_moons(n_samples=100, noise=0.25, random_state=3)
    features_train, _, labels_train, _ = train_test_split(
        features, labels, stratify=labels, random_state=42
    )
    model = RandomForestClassifier(n_estimators=n_estimators, random_state=0)
    return model.fit(features_train, labels_train)


def joblib_bytes(estimator: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="write the joblib file here")
    parser.add_argument(
        "--register-if-empty",
        action="store_true",
        help=f"register it as {EXAMPLE_MODEL_NAME!r} in REGISTRY_URI unless that model exists",
    )
    parser.add_argument("--n-estimators", type=int, default=5)
    args = parser.parse_args()

    data = joblib_bytes(train_moons(args.n_estimators))
    if args.output:
        args.output.write_bytes(data)
        print(f"wrote {args.output} ({len(data)} bytes)")
    if args.register_if_empty:
        # As the local API registers: validated in a child process with no credentials.
        settings = service.settings()
        versions = service.model_registry().list_versions(EXAMPLE_MODEL_NAME)
        if versions:
            print(
                f"{EXAMPLE_MODEL_NAME!r} already has versions {versions} in {settings.registry_uri}"
            )
        else:
            manifest = (
                service.registrar()
                .register(
                    EXAMPLE_MODEL_NAME, data, description="the blog's RandomForest on make_moons"
                )
                .info.manifest
            )
            where = settings.registry_uri
            print(f"registered {manifest.name!r} version {manifest.version} in {where}")


if __name__ == "__main__":
    main()
