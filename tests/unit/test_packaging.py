"""Publishable: `pip install .` gives the command and the client alone; the runtime is an extra."""

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    # Built from a copy of what `pip install .` reads, so the clone gets no build/ folder.
    source = tmp_path_factory.mktemp("source")
    requirement_files = ["layer/requirements.txt", *_relative(REPO_ROOT.glob("requirements/*.txt"))]
    for name in ("pyproject.toml", "README.md", "LICENSE", *requirement_files):
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


def test_the_wheel_is_apache_licensed_and_names_no_url(wheel: zipfile.ZipFile) -> None:
    metadata = _metadata(wheel)

    assert metadata["License-Expression"] == "Apache-2.0"
    assert (
        wheel.read(_dist_info(wheel) + "licenses/LICENSE") == (REPO_ROOT / "LICENSE").read_bytes()
    )
    assert b"Apache License" in (REPO_ROOT / "LICENSE").read_bytes()[:200]
    # No home page, documentation or issue tracker is published yet: none is named.
    assert metadata.get_all("Project-URL") is None
    assert metadata.get_all("Home-page") is None


def test_a_plain_install_brings_nothing_and_the_runtime_is_the_server_extra(
    wheel: zipfile.ZipFile,
) -> None:
    requires = _metadata(wheel).get_all("Requires-Dist")
    by_extra: dict[str, list[str]] = {}
    for requirement in requires:
        name, _, marker = requirement.partition(";")
        extra = marker.split("extra ==")[1].strip().strip("'\"") if "extra ==" in marker else ""
        by_extra.setdefault(extra, []).append(name.strip())

    assert "" not in by_extra  # no plain dependency at all: the client is the standard library
    assert by_extra["server"] == _pins("layer/requirements.txt")
    assert by_extra["aws"] == _pins("requirements/aws.txt")
    assert sorted(by_extra["dev"]) == sorted(
        set(
            _pins("layer/requirements.txt")
            + _pins("requirements/local.txt")
            + _pins("requirements/dev.txt")
        )
    )
    assert not [pin for pin in by_extra["server"] if pin.split("==")[0] in ("pytest", "moto")]


def test_the_wheel_holds_the_command_and_the_client_and_no_tests(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    entry_points = wheel.read(_dist_info(wheel) + "entry_points.txt").decode()

    assert "model-registry = registry.client.cli:main" in entry_points
    assert {"registry/client/registry_client.py", "registry/client/cli.py"} <= set(names)
    assert not [name for name in names if name.startswith(("tests/", "scripts/", "functions/"))]


def test_the_client_and_the_command_import_nothing_a_plain_install_lacks() -> None:
    probe = (
        "import sys, registry.client.cli, registry.client; "
        "heavy = {'boto3', 'botocore', 'yaml', 'moto', 'pytest', 'numpy', 'pandas', 'pydantic', "
        "'sklearn', 'scipy', 'joblib', 'skops', 'aws_lambda_powertools'}; "
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )

    assert answer.stdout.strip() == "[]"


def test_installing_the_wheel_leaves_a_notebooks_scikit_learn_alone(
    wheel: zipfile.ZipFile, tmp_path: Path
) -> None:
    # A notebook environment with another scikit-learn than the runtime's (1.8.0, not 1.9.1).
    venv = tmp_path / "notebook"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", "scikit-learn==1.8.0"], check=True, timeout=600)
    assert wheel.filename is not None

    # As a user would: dependencies resolved, from the package index if there were any.
    subprocess.run([*pip, wheel.filename], check=True, timeout=600)

    version = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('scikit-learn'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    help_text = subprocess.run(
        [str(venv / "bin" / "model-registry"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert version.stdout.strip() == "1.8.0"
    names = {line.split("==")[0].lower() for line in installed.stdout.splitlines()}
    assert names == {"model-registry", "scikit-learn", "pip"}
    assert "usage: model-registry" in help_text.stdout
    assert "classify" in help_text.stdout


def _metadata(wheel: zipfile.ZipFile) -> Message:
    return Parser().parsestr(wheel.read(_dist_info(wheel) + "METADATA").decode())


def _pins(relative: str) -> list[str]:
    lines = (REPO_ROOT / relative).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _relative(paths: Iterable[Path]) -> list[str]:
    return [str(path.relative_to(REPO_ROOT)) for path in paths]


def _dist_info(wheel: zipfile.ZipFile) -> str:
    (info,) = {name.split("/")[0] for name in wheel.namelist() if ".dist-info/" in name}
    return info + "/"


def test_make_package_runs_sam_build_with_a_plain_python_that_has_no_boto3() -> None:
    """The build works as SAM users run it: no venv on PATH, so nothing it relies on is ours."""
    recipe = subprocess.run(
        ["make", "-n", "package"], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    ).stdout
    build = next(line for line in recipe.splitlines() if line.endswith("sam build"))
    path = build.split('PATH="', 1)[1].split('"', 1)[0]
    assert ".venv" not in path and str(REPO_ROOT) not in path, path
    python = shutil.which("python3.12", path=path)
    assert python is not None, path
    probe = subprocess.run([python, "-c", "import boto3"], capture_output=True, text=True)
    assert probe.returncode != 0, "the build's python3.12 has boto3: the test proves nothing"
