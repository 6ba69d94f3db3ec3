"""Publishable: `pip install .` gives the command and the client, without the dev tools."""

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    # Built from a copy of what `pip install .` reads, so the clone gets no build/ folder.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE", "layer/requirements.txt"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(
        REPO_ROOT / "registry", source / "registry", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path_factory.mktemp("wheel")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", str(source)]
    subprocess.run([*pip_wheel, "-w", str(out)], check=True, timeout=300)
    (built,) = out.glob("model_registry-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_is_apache_licensed_with_the_project_urls(wheel: zipfile.ZipFile) -> None:
    metadata = Parser().parsestr(wheel.read(_dist_info(wheel) + "METADATA").decode())

    assert metadata["License-Expression"] == "Apache-2.0"
    assert (
        wheel.read(_dist_info(wheel) + "licenses/LICENSE") == (REPO_ROOT / "LICENSE").read_bytes()
    )
    assert b"Apache License" in (REPO_ROOT / "LICENSE").read_bytes()[:200]
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL"))
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(urls)


def test_a_plain_install_brings_the_runtime_but_no_development_tool(wheel: zipfile.ZipFile) -> None:
    metadata = Parser().parsestr(wheel.read(_dist_info(wheel) + "METADATA").decode())
    plain = [dist for dist in metadata.get_all("Requires-Dist") if "extra ==" not in dist]
    runtime = [
        line
        for line in (REPO_ROOT / "layer" / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]

    assert plain == runtime
    assert not [dist for dist in plain if dist.split("==")[0] in ("pytest", "moto", "mypy", "ruff")]


def test_the_wheel_holds_the_command_and_the_client_and_no_tests(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    entry_points = wheel.read(_dist_info(wheel) + "entry_points.txt").decode()

    assert "model-registry = registry.client.cli:main" in entry_points
    assert {"registry/client/registry_client.py", "registry/client/cli.py"} <= set(names)
    assert not [name for name in names if name.startswith(("tests/", "scripts/", "functions/"))]


def test_the_client_and_the_command_import_nothing_a_plain_install_lacks() -> None:
    probe = (
        "import sys, registry.client.cli, registry.client; "
        "print(sorted({'boto3', 'botocore', 'yaml', 'moto', 'pytest'} & set(sys.modules)))"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )

    assert answer.stdout.strip() == "[]"


def _dist_info(wheel: zipfile.ZipFile) -> str:
    (info,) = {name.split("/")[0] for name in wheel.namelist() if ".dist-info/" in name}
    return info + "/"
