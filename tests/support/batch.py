"""Inputs of batch jobs: the blog's data as a CSV file with an id column."""

from pathlib import Path

import pandas
from sklearn.datasets import make_moons


def moons_csv(path: Path, rows: int, seed: int = 7) -> pandas.DataFrame:
    """Rows of make_moons as data1, data2 (what the blog's model takes), with an id column."""
    features, _ = make_moons(n_samples=rows, noise=0.3, random_state=seed)
    frame = pandas.DataFrame(features, columns=["data1", "data2"])
    frame.insert(0, "id", [f"row-{index}" for index in range(rows)])
    frame.to_csv(path, index=False)
    return frame
