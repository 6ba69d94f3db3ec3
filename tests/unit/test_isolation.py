"""The sandbox's measures one by one (registry/inspecting/isolation.py), each in a process of
its own, since namespaces, seccomp filters and limits cannot be undone by the process that
took them."""

import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from registry.config import PicklePolicy
from registry.inspecting.isolation import SandboxMeasures, writable_import_paths
from registry.inspecting.worker import SandboxUnavailable, Zygote
from registry.manifest import ArtifactFormat
from tests.support.models import joblib_of

REPO_ROOT = Path(__file__).resolve().parents[2]
SANDBOX_MEASURES = [field.name for field in fields(SandboxMeasures)]
LINEAR = joblib_of(LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 1, 0, 1]))


def run_python(code: str, *args: str) -> dict[str, object]:
    """Run code in a fresh interpreter (with the repository importable); its JSON answer."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        cwd="/",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.splitlines()[-1]))


PRIVATE_FILESYSTEM = r"""
import json, os, sys
from pathlib import Path
from registry.inspecting.isolation import enter_private_filesystem, writable_import_paths
outside = sys.argv[1]
entered = enter_private_filesystem()
def attempt(action):
    try:
        action()
        return "done"
    except OSError as exc:
        return type(exc).__name__
print(json.dumps({
    "entered": entered,
    "write_repository": attempt(lambda: Path(sys.argv[2], "planted.py").write_text("x")),
    "write_outside_tmp": attempt(lambda: Path(outside, "planted").write_text("x")),
    "tmp_holds": os.listdir("/tmp"),
    "write_private_tmp": attempt(lambda: Path("/tmp/mine").write_text("x")),
    "write_dev_shm": attempt(lambda: Path("/dev/shm/mine").write_text("x")),
    "writable_import_paths": writable_import_paths(sys.path),
}))
"""


def test_a_private_filesystem_is_read_only_but_for_a_private_empty_tmp(tmp_path: Path) -> None:
    report = run_python(PRIVATE_FILESYSTEM, str(tmp_path), str(REPO_ROOT))
    # a clone in a `mktemp -d` folder under /tmp is bound back in its place; nothing else is
    code_under_tmp = [REPO_ROOT.parts[2]] if REPO_ROOT.parts[1] == "tmp" else []

    assert report == {
        "entered": True,
        "write_repository": "OSError",  # read-only file system
        "write_outside_tmp": "FileNotFoundError",  # /tmp is another, empty one
        "tmp_holds": code_under_tmp,
        "write_private_tmp": "done",
        "write_dev_shm": "done",
        "writable_import_paths": [],
    }
    # and what was written in the private /tmp and /dev/shm is nowhere outside
    assert not Path("/tmp/mine").exists() and not Path("/dev/shm/mine").exists()
    assert not (REPO_ROOT / "planted.py").exists()


def test_a_writable_import_path_entry_is_found(tmp_path: Path) -> None:
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)
    assert writable_import_paths([str(tmp_path), "/nonexistent/entry"]) == [str(tmp_path)]
    if os.geteuid() != 0:  # root may write anywhere a mount allows
        assert writable_import_paths([str(read_only)]) == []


def test_a_sandbox_whose_import_path_is_writable_refuses_to_start() -> None:
    """Without its private filesystem, the zygote sees the repository and site-packages
    writable (this test runs as their owner): it refuses, rather than run where an artifact
    could plant a module."""
    sandbox = Zygote(SandboxMeasures.without(["private_filesystem"]))
    with pytest.raises(SandboxUnavailable, match="import path entries are writable"):
        sandbox.start()
    sandbox.stop()


NO_NEW_IMPORTS = r"""
import json, sys
from pathlib import Path
from registry.inspecting.isolation import block_new_imports
Path(sys.argv[1], "planted_module.py").write_text("PLANTED = True")
sys.path.insert(0, sys.argv[1])
import json as again  # already imported: still fine
block_new_imports()
try:
    import planted_module
    outcome = "imported"
except ImportError as exc:
    outcome = str(exc)
print(json.dumps({"outcome": outcome, "json": again is json}))
"""


def test_after_block_new_imports_only_modules_already_imported_import(tmp_path: Path) -> None:
    report = run_python(NO_NEW_IMPORTS, str(tmp_path))

    assert report == {
        "outcome": "planted_module was not imported before the sandbox forked",
        "json": True,
    }


SECCOMP = r"""
import ctypes, errno, fcntl, json, os, resource, signal, socket, threading
from registry.inspecting.isolation import forbid_new_privileges, install_seccomp_filter
parent = os.getppid()
def attempt(action):
    try:
        action()
        return "done"
    except OSError as exc:
        return type(exc).__name__
def sysv_shared_memory():
    libc = ctypes.CDLL(None, use_errno=True)
    created = libc.shmget(0, 16, 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT
    refused = {errno.EPERM: "PermissionError"}.get(ctypes.get_errno(), "other")
    return "done" if created >= 0 else refused
installed = forbid_new_privileges() and install_seccomp_filter()
thread = threading.Thread(target=lambda: None)
read, write = os.pipe()
print(json.dumps({
    "installed": installed,
    "signal_parent": attempt(lambda: os.kill(parent, 0)),
    "signal_all": attempt(lambda: os.kill(-1, 0)),
    "signal_itself": attempt(lambda: os.kill(os.getpid(), 0)),
    "signal_own_thread": attempt(lambda: signal.pthread_kill(threading.get_ident(), 0)),
    "start_thread": attempt(lambda: (thread.start(), thread.join())),
    "fork": attempt(os.fork),
    "execute": attempt(lambda: os.execv("/bin/true", ["true"])),
    "unshare": attempt(lambda: os.unshare(os.CLONE_NEWUSER)),
    "limit_parent": attempt(lambda: resource.prlimit(parent, resource.RLIMIT_NOFILE, (64, 64))),
    "limit_itself": attempt(lambda: resource.prlimit(0, resource.RLIMIT_CORE, (0, 0))),
    "pin_parent": attempt(lambda: os.sched_setaffinity(parent, {0})),
    "pin_itself": attempt(lambda: os.sched_setaffinity(0, os.sched_getaffinity(0))),
    "renice_parent": attempt(lambda: os.setpriority(os.PRIO_PROCESS, parent, 19)),
    "signal_through_a_descriptor": attempt(lambda: fcntl.fcntl(read, fcntl.F_SETOWN, parent)),
    "descriptor_flags": attempt(lambda: fcntl.fcntl(read, fcntl.F_SETFL, os.O_NONBLOCK)),
    "open_socket": attempt(lambda: socket.socket(socket.AF_UNIX)),
    "system_v_shared_memory": sysv_shared_memory(),
}))
"""


def test_the_seccomp_filter_keeps_a_child_to_itself() -> None:
    report = run_python(SECCOMP)

    assert report == {
        "installed": True,
        "signal_parent": "PermissionError",
        "signal_all": "PermissionError",
        "signal_itself": "done",
        "signal_own_thread": "done",
        "start_thread": "done",
        "fork": "PermissionError",
        "execute": "PermissionError",
        "unshare": "PermissionError",
        "limit_parent": "PermissionError",
        "limit_itself": "done",
        "pin_parent": "PermissionError",
        "pin_itself": "done",
        "renice_parent": "PermissionError",
        "signal_through_a_descriptor": "PermissionError",
        "descriptor_flags": "done",
        "open_socket": "PermissionError",
        "system_v_shared_memory": "PermissionError",  # it would outlive the child
    }


def test_unknown_measures_are_refused_with_the_names_there_are() -> None:
    with pytest.raises(ValueError, match=r"unknown sandbox measure .*'seccomp'"):
        SandboxMeasures.without(["secomp"])
    assert SandboxMeasures.without(["seccomp", " reap", ""]).off() == ["seccomp", "reap"]
    assert SandboxMeasures().off() == []


@pytest.mark.parametrize(
    "off",
    [name for name in SANDBOX_MEASURES if name != "private_filesystem"],
)
def test_the_sandbox_validates_with_any_one_measure_left_off_but_its_filesystem(off: str) -> None:
    """Each measure can be left off alone (SANDBOX_MEASURES_OFF) and the sandbox still works;
    without its private filesystem it refuses to run (see above)."""
    sandbox = Zygote(SandboxMeasures.without([off]))
    try:
        found = sandbox.inspect(LINEAR, ArtifactFormat.JOBLIB, PicklePolicy.CONVERT, 10**6)
    finally:
        sandbox.stop()
    assert found.estimator.estimator_class.endswith("LogisticRegression")
