"""The README's DataFrame walkthrough, run as a reader would paste it."""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy
import pandas
import skops.io

from tests.e2e.test_cli import cli, cli_json

REPO_ROOT = Path(__file__).resolve().parents[2]


def readme_training_script() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    found = re.search(r"<!-- readme-dataframe-example -->\n```python\n(.*?)```", readme, re.DOTALL)
    assert found, "the README's DataFrame example is gone"
    return found.group(1)


def test_the_readmes_dataframe_pipeline_registers_and_classifies_exactly(
    module_api_url: str, tmp_path: Path
) -> None:
    api_url = module_api_url
    (tmp_path / "train_wine.py").write_text(readme_training_script())
    subprocess.run([sys.executable, "train_wine.py"], cwd=tmp_path, check=True, timeout=300)

    cli(
        api_url,
        "register",
        str(tmp_path / "wine.skops"),
        "--name",
        "wine",
        "--input-example",
        str(tmp_path / "example.csv"),
    )
    answer: Any = cli_json(
        api_url, "classify", "wine", "--input", str(tmp_path / "rows.csv"), "--probabilities"
    )

    data = (tmp_path / "wine.skops").read_bytes()
    model = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    rows = pandas.read_csv(tmp_path / "rows.csv")
    assert rows.isna().any().any()  # the walkthrough does send missing values
    assert numpy.array_equal(numpy.array(answer["predictions"]), model.predict(rows))
    assert numpy.array_equal(numpy.array(answer["probabilities"]), model.predict_proba(rows))
