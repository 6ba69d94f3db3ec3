"""Where artifacts are loaded: a zygote process, and one child of it per artifact.

The validator (registry/inspecting/worker.py) starts the zygote as a fresh interpreter
(`python -P -s -m registry.inspecting.sandbox`) with a clean environment (no credential, no AWS
variable, not even in its /proc environ), working directory / and a PYTHONPATH of code
only. Before it imports anything else, the zygote takes what the kernel gives it
(registry/inspecting/isolation.py): a user namespace whose mounts are all read-only, with a private,
empty /tmp; a network namespace with no interface; no capability. It refuses to run if
any entry of its import path is writable. Then it imports everything a child may import
(scikit-learn's estimators, skops, pandas, our loaders), and only forks: it never holds a
caller's byte.

For each artifact the validator sends two pipe ends over a Unix socket (the artifact in,
the answer out). The zygote forks a child that starts a session of its own, keeps no
descriptor but those two, gets a scratch directory of its own, bounds its memory, file
sizes and processes, installs a seccomp filter (no signal to another process, no ptrace,
no process_vm_*, no new process or program, no namespace or mount), and from then on can
import nothing new. It reads the artifact, loads and describes it, makes its serving copy,
writes its findings and exits.

When the validator has read the answer, the zygote stops and kills every process below
it until none is left (it is their subreaper, so orphans of any session come to it),
removes the child's scratch, empties its private /tmp, and says whether the child exited
cleanly. The validator treats anything else as a tainted sandbox and starts a new one.
"""

import contextlib
import dataclasses
import json
import os
import signal
import socket
import struct
import sys
import tempfile
import time
from typing import Any

from registry.inspecting.isolation import (
    SandboxMeasures,
    SandboxRefused,
    address_space_bytes,
    become_subreaper,
    block_new_imports,
    drop_capabilities,
    empty_directory,
    enter_private_filesystem,
    forbid_new_privileges,
    install_seccomp_filter,
    kill_descendants,
    leave_the_network,
    limit_resources,
    make_undumpable,
    own_proc,
    process_state,
    refuse_writable_import_path,
)

# What a child writes: the lengths of its JSON and of its serving copy, then both.
CHILD_HEADER = struct.Struct("!QQ")
# What the zygote imports before it forks, besides scikit-learn's every estimator module:
# what loading, describing, compiling, converting and checking an artifact reaches.
PREIMPORTED_MODULES = (
    "registry.inspecting.inspection",
    "registry.structures",
    "skops.io",
    "pandas",
    "joblib",
    "scipy.special",
    "scipy.sparse",
    "encodings.cp437",  # zipfile's names, when it reads a skops file
)
# A child's bounds: what it may map beyond the zygote's size, besides what its request
# allows for the artifact and the loaded model; the largest file it may write; and how
# many threads or processes its user may start (it runs one thread, scikit-learn may
# start a few; seccomp refuses processes where the kernel has it).
CHILD_ADDRESS_SPACE_SLACK = 768 * 1024 * 1024
CHILD_FILE_BYTES = 64 * 1024 * 1024
CHILD_MORE_TASKS = 32
# How long a child that closed its answer may take to exit before it is killed.
CHILD_EXIT_SECONDS = 2.0


def main(fd: int, config: dict[str, Any]) -> None:
    """The zygote: isolate, check, import, then fork a child per request until closed."""
    connection = socket.socket(fileno=fd)
    measures = SandboxMeasures.without(config.get("off", []))
    private, own_processes = _enter_namespaces(measures)
    make_undumpable()
    subreaper = become_subreaper()
    empty_tmp = private or bool(config.get("empty_tmp"))
    tmp_root = tempfile.gettempdir()
    if empty_tmp:
        empty_directory(tmp_root)
    home = tempfile.mkdtemp(prefix="zygote-")
    os.environ["HOME"] = home
    try:
        if measures.safe_import_path:
            refuse_writable_import_path()
    except SandboxRefused as exc:
        connection.sendall(json.dumps({"ready": False, "refused": str(exc)}).encode())
        return
    preload(measures)
    seccomp = measures.seccomp and _seccomp_works()
    ready = {
        "ready": True,
        "subreaper": subreaper,
        "private": private,
        "own_processes": own_processes,
        "seccomp": seccomp,
    }
    connection.sendall(json.dumps(ready).encode())
    started_as = process_state()
    while True:
        message, fds, _, _ = socket.recv_fds(connection, 4096, 2)
        if not message:
            return
        request = json.loads(message)
        if process_state() != started_as:
            # A child changed this process's limits, priority or CPUs (where no seccomp keeps
            # it from): every later child would inherit them. A fresh zygote serves instead.
            connection.sendall(json.dumps({"tainted": True}).encode())
            return
        scratch = tempfile.mkdtemp(dir=home)
        pid = os.fork()
        if pid == 0:
            connection.close()
            child_measures = measures if seccomp else _without_seccomp(measures)
            _child(fds[0], fds[1], request, child_measures, scratch)
        for fd_ in fds:
            os.close(fd_)
        connection.sendall(json.dumps({"pid": pid}).encode())
        if json.loads(connection.recv(4096) or b"{}").get("reap") is not True:
            return
        clean = _finished_cleanly(pid)
        killed = kill_descendants() if measures.reap else 0
        # Nothing a child wrote is there for the next: its scratch, the home, /tmp, /dev/shm.
        # Where something could not be removed, the sandbox is tainted (a fresh zygote).
        emptied = empty_directory(home)
        if empty_tmp:
            emptied = empty_directory(tmp_root, keep=[os.path.basename(home)]) and emptied
        if private:
            emptied = empty_directory("/dev/shm") and emptied
        answer = {"clean": clean and emptied, "killed": killed}
        connection.sendall(json.dumps(answer).encode())


def _enter_namespaces(measures: SandboxMeasures) -> tuple[bool, bool]:
    """What the kernel gives: a read-only, private filesystem; no network; a PID namespace
    whose init this process becomes (it forks, and the parent only waits). Whether the
    filesystem is private, and whether this process is that init. Capabilities the
    namespaces gave are dropped once they are used."""
    processes = measures.private_filesystem and measures.own_processes
    private = measures.private_filesystem and enter_private_filesystem(
        network=measures.no_network, processes=processes
    )
    entered = private or (measures.no_network and leave_the_network())
    own_processes = private and processes
    if own_processes:
        init = os.fork()  # the first process of the new PID namespace: its init
        if init != 0:
            _, status = os.waitpid(init, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        own_proc()
    if entered:
        drop_capabilities()
    return private, own_processes


def _seccomp_works() -> bool:
    """Whether a child can install the filter here (not on Lambda): asked of a short-lived
    child, so that a child that cannot where it could is known to be tampered with."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if forbid_new_privileges() and install_seccomp_filter() else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _without_seccomp(measures: SandboxMeasures) -> SandboxMeasures:
    return dataclasses.replace(measures, seccomp=False)


def preload(measures: SandboxMeasures) -> None:
    """Import what the children use: with preimport, everything a child may ever import;
    without, only their entry point (what the zygote imported before this measure)."""
    import importlib

    if not measures.preimport:
        importlib.import_module("registry.inspecting.inspection")
        return
    for module in PREIMPORTED_MODULES:
        importlib.import_module(module)
    from sklearn.utils.discovery import all_estimators

    all_estimators()  # imports every module of scikit-learn that defines an estimator
    _warm_up()


def _warm_up() -> None:
    """Inspect two small models as a child would (a DataFrame pipeline with strings, missing
    values and HistGradientBoosting, and one on pandas categories, from joblib and skops
    files), so that what that path imports only when it first runs (pandas' and narwhals'
    DataFrame machinery, codecs) is imported before the zygote forks."""
    import io

    import joblib
    import pandas
    import skops.io
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from registry.inspecting.inspection import inspect_artifact

    table = pandas.DataFrame(
        {
            "x": [0.0, 1.0, None, 3.0],
            "side": ["a", "b", "a", None],
            "kind": pandas.Categorical(["u", "v", "u", "v"]),
        }
    )
    labels = [0, 1, 0, 1]
    pipeline = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["side"]), (SimpleImputer(), ["x"])
        ),
        HistGradientBoostingClassifier(max_iter=2),
    ).fit(table, labels)
    categories = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=2).fit(
        table[["x", "kind"]], labels
    )
    example = [{"x": 0.5, "side": "a", "kind": "u"}]
    # A registration's inputs, then an upgrade check's.
    inputs = [{"example": example}, {"example": example, "check_rows": example * 2}]
    for model in (pipeline, categories):
        pickled = io.BytesIO()
        joblib.dump(model, pickled)
        for data, format in ((pickled.getvalue(), "joblib"), (skops.io.dumps(model), "skops")):
            for rows in inputs:
                encoded = json.dumps(rows).encode()
                request = {
                    "format": format,
                    "pickle_policy": "convert",
                    "rows_bytes": len(encoded),
                    "max_loaded_bytes": 1 << 30,
                    "max_serving_bytes": 1 << 30,
                    "other_version": "check_rows" in rows,
                }
                inspect_artifact(data + encoded, request)


def _finished_cleanly(pid: int) -> bool:
    """Whether the child exited by itself with status 0; a child still running is killed."""
    deadline = time.monotonic() + CHILD_EXIT_SECONDS
    while True:
        try:
            waited, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return False
        if waited == pid:
            return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False
        time.sleep(0.001)


def _child(
    artifact_fd: int,
    answer_fd: int,
    request: dict[str, Any],
    measures: SandboxMeasures,
    scratch: str,
) -> None:
    """Set up every measure, inspect, answer; exit 0 only once the answer is written, so
    that a measure that could not be taken taints the sandbox rather than pass unnoticed."""
    code = 1
    try:
        _isolate(artifact_fd, answer_fd, scratch)
        if measures.resource_limits:
            allowed = int(request["max_bytes"]) * 2 + int(request["max_loaded_bytes"]) * 4
            limit_resources(
                address_space_bytes() + allowed + CHILD_ADDRESS_SPACE_SLACK,
                CHILD_FILE_BYTES,
                CHILD_MORE_TASKS,
            )
        if measures.seccomp and not (forbid_new_privileges() and install_seccomp_filter()):
            return
        if measures.preimport:
            block_new_imports()
        data = _read_artifact(artifact_fd, int(request["max_bytes"]))
        from registry.inspecting.inspection import inspect_artifact

        findings, serving = inspect_artifact(data, request)
        body = findings.model_dump_json(exclude_none=True).encode()
        _write_all(answer_fd, CHILD_HEADER.pack(len(body), len(serving)) + body + serving)
        code = 0
    finally:
        os._exit(code)


def _isolate(artifact_fd: int, answer_fd: int, scratch: str) -> None:
    """A session of its own, no inherited descriptor but the two pipe ends, and a scratch
    directory of its own for whatever wants a temporary file."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for standard in (0, 1, 2):
        os.dup2(devnull, standard)
    start = 3
    for fd in sorted((artifact_fd, answer_fd)):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 65536)
    os.environ.update(HOME=scratch, TMPDIR=scratch)
    tempfile.tempdir = scratch


def _read_artifact(fd: int, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, 1 << 20):
        total += len(chunk)
        if total > max_bytes:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    main(int(sys.argv[1]), json.loads(sys.argv[2]))
