"""Leave out of the built layer what Lambda never runs, keeping every import working.

Run by layer/Makefile on the layer's python/ folder after pip installed it:
- what only skops's model cards and command line import (`skops/card`, `skops/cli`, and
  their dependencies prettytable and wcwidth, 3.3 MB of Unicode tables): skops.io, the one
  part of skops a function loads, imports none of them (tests/integration/test_built_package.py
  loads a skops artifact from the built layer);
- test suites (`tests/`, `joblib/test/`), caches (`__pycache__`), C and Cython sources,
  headers, type stubs, and pip's RECORD lists (nothing will uninstall from a layer);
- debug symbols of the extension modules (`strip --strip-unneeded`); not of the libraries
  auditwheel vendored into `*.libs/`, whose patched ELF headers strip would break;
- the docstrings of scipy, scikit-learn, pandas and some smaller packages (they carry them by
  the megabyte, and layer/bytecode.py would compile them again into .pyc): each is
  replaced by an empty string on the same lines, so `__doc__` stays a string (code that
  templates docstrings keeps working) and tracebacks keep their line numbers. Not numpy's:
  numpy.ma checks the text of numpy's docstrings at import.

Prints the bytes it saved. Usage: python3.12 slim.py LAYER_PYTHON_DIR
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

TEST_DIRS = {"tests", "__pycache__"}
TEST_DIRS_BY_PACKAGE = {Path("joblib/test"), Path("skops/card"), Path("skops/cli")}
# Whole distributions that only the parts of skops left out above import.
UNIMPORTED_DISTRIBUTIONS = ("prettytable", "wcwidth")
DEAD_SUFFIXES = {".pyx", ".pxd", ".pxi", ".pyi", ".c", ".cpp", ".h", ".hpp"}
DOCSTRING_FREE_PACKAGES = (
    "scipy",
    "sklearn",
    "pandas",
    "narwhals",
    "joblib",
    "aws_lambda_powertools",
    "pydantic",
)


def tree_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def remove_dead_files(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        relative = path.relative_to(root)
        if path.is_dir() and (path.name in TEST_DIRS or relative in TEST_DIRS_BY_PACKAGE):
            shutil.rmtree(path)
        elif path.is_file() and (
            path.suffix in DEAD_SUFFIXES
            or (path.name == "RECORD" and path.parent.name.endswith(".dist-info"))
        ):
            path.unlink()


def remove_unimported_distributions(root: Path) -> None:
    for name in UNIMPORTED_DISTRIBUTIONS:
        for path in [root / name, *root.glob(f"{name}-*.dist-info")]:
            if path.is_dir():
                shutil.rmtree(path)


def strip_shared_libraries(root: Path) -> None:
    strip = shutil.which("strip")
    if strip is None:
        print("slim: no `strip` on PATH; shared libraries keep their symbols", file=sys.stderr)
        return
    libraries = [
        str(path)
        for path in root.rglob("*.so")
        if path.is_file() and not path.parent.name.endswith(".libs")
    ]
    for start in range(0, len(libraries), 200):
        subprocess.run([strip, "--strip-unneeded", *libraries[start : start + 200]], check=True)


def _docstring_nodes(tree: ast.Module) -> list[ast.Constant]:
    nodes = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                nodes.append(body[0].value)
    return nodes


def blank_docstrings(source: bytes) -> bytes:
    """The source with every docstring replaced by "" on the lines it used to span."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    # From the last docstring to the first, so earlier offsets stay valid.
    for node in sorted(
        _docstring_nodes(tree), key=lambda n: (n.lineno, n.col_offset), reverse=True
    ):
        assert node.end_lineno is not None and node.end_col_offset is not None
        first, last = node.lineno - 1, node.end_lineno - 1
        head = lines[first][: node.col_offset]
        tail = lines[last][node.end_col_offset :]
        lines[first : last + 1] = [head + b'""' + tail] + [b"\n"] * (last - first)
    return b"".join(lines)


def blank_all_docstrings(root: Path) -> None:
    for path in (p for package in DOCSTRING_FREE_PACKAGES for p in (root / package).rglob("*.py")):
        source = path.read_bytes()
        try:
            slimmed = blank_docstrings(source)
        except (SyntaxError, ValueError):
            continue  # leave what does not parse as it is
        if len(slimmed) < len(source):
            compile(slimmed, str(path), "exec")
            path.write_bytes(slimmed)


def main() -> None:
    root = Path(sys.argv[1])
    before = tree_bytes(root)
    remove_dead_files(root)
    remove_unimported_distributions(root)
    strip_shared_libraries(root)
    blank_all_docstrings(root)
    after = tree_bytes(root)
    print(f"slim: {before:,} -> {after:,} bytes ({before - after:,} left out)")


if __name__ == "__main__":
    main()
