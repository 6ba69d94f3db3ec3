"""Where artifacts are loaded: a zygote process, and one child of it per artifact.

The validator (registry/inspection.py) starts the zygote as a fresh interpreter with
a clean environment (`python -m registry.sandbox`): no credential, no AWS variable,
not even in its /proc environ. The zygote imports scikit-learn and the usual estimator
modules once, then only forks: it never holds a caller's byte. For each artifact the
validator sends it two pipe ends over a Unix socket (the artifact in, the answer out);
the zygote forks a child that starts a session of its own, keeps no descriptor but
those two, reads the artifact, loads and describes it, writes its findings and exits.

A fork of a process that never held request data leaks no other registration's bytes
into the child. The zygote is a child subreaper: whatever an artifact's code starts
(double forks and new sessions included) is reparented to it, and after each artifact
it kills every process below it. It is undumpable, so a child cannot read its memory.
"""

import contextlib
import ctypes
import importlib
import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from registry.artifacts import (
    describe_estimator,
    example_features,
    load_estimator,
    serving_bytes,
    try_example,
)
from registry.compiled import CompiledFormError, load_compiled
from registry.config import PicklePolicy
from registry.manifest import ArtifactFormat, ServingFormat
from registry.tree_compiler import exact_form
from registry.validation import ArtifactRejected, ChildFindings, Rejection, RejectionReason

# What a child writes: the lengths of its JSON and of its serving copy, then both.
CHILD_HEADER = struct.Struct("!QQ")
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
# Imported once by the zygote, before it forks: otherwise every child imports the
# estimator's module anew (about 90 ms for a LogisticRegression, 700 ms for a forest).
COMMON_ESTIMATOR_MODULES = (
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.compose",
    "sklearn.impute",
    "sklearn.tree",
    "sklearn.svm",
    "sklearn.neighbors",
    "sklearn.naive_bayes",
    "sklearn.neural_network",
    "sklearn.model_selection",
)


def prctl(option: int, value: int) -> bool:
    """Whether the kernel took the setting (not on other systems, nor where seccomp refuses)."""
    with contextlib.suppress(OSError, AttributeError):
        return int(ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)) == 0
    return False


def serve_zygote(connection: socket.socket) -> None:
    """Fork a child per request until the validator closes the socket."""
    prctl(_PR_SET_DUMPABLE, 0)
    subreaper = prctl(_PR_SET_CHILD_SUBREAPER, 1)
    for module in COMMON_ESTIMATOR_MODULES:
        importlib.import_module(module)
    connection.sendall(json.dumps({"ready": True, "subreaper": subreaper}).encode())
    while True:
        message, fds, _, _ = socket.recv_fds(connection, 4096, 2)
        if not message:
            return
        request = json.loads(message)
        if request.get("reap"):
            connection.sendall(json.dumps({"reaped": reap_descendants()}).encode())
            continue
        pid = os.fork()
        if pid == 0:
            connection.close()
            _inspect_and_exit(fds[0], fds[1], request)
        for fd in fds:
            os.close(fd)
        connection.sendall(json.dumps({"pid": pid}).encode())


def reap_descendants() -> int:
    """Kill every process below this one (a subreaper inherits the orphans) and reap them."""
    killed = 0
    for _ in range(50):
        children = _children_of(os.getpid())
        if not children:
            break
        for pid in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed += 1
        _reap_exited()
        time.sleep(0.005)
    _reap_exited()
    return killed


def _reap_exited() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


def _children_of(parent: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


def _inspect_and_exit(artifact_fd: int, answer_fd: int, request: dict[str, Any]) -> None:
    try:
        _isolate(artifact_fd, answer_fd)
        data = _read_artifact(artifact_fd, int(request["max_bytes"]))
        example_bytes = int(request.get("example_bytes", 0))
        example = json.loads(data[len(data) - example_bytes :]) if example_bytes else None
        data = data[: len(data) - example_bytes]
        format = ArtifactFormat(request["format"])
        policy = PicklePolicy(request["pickle_policy"])
        serving = b""
        try:
            estimator = load_estimator(data, format, policy)
            description = describe_estimator(estimator)
            if example is not None:
                description = description.model_copy(
                    update={"example": try_example(estimator, description, example)}
                )
            findings = ChildFindings(estimator=description)
            max_serving_bytes = int(request["max_serving_bytes"])
            serving = _compiled_form(estimator, description, example, max_serving_bytes)
            if serving:
                findings.serving_format = ServingFormat.COMPILED
            elif format is ArtifactFormat.JOBLIB:
                serving = _serving_copy(estimator, max_serving_bytes)
                findings.serving_format = ServingFormat.PICKLE if serving else None
        except ArtifactRejected as exc:
            findings = ChildFindings(rejection=exc.rejection)
        except Exception:  # anything else the artifact's object raised while described
            findings = ChildFindings(rejection=Rejection(reason=RejectionReason.NOT_LOADABLE))
        body = findings.model_dump_json(exclude_none=True).encode()
        _write_all(answer_fd, CHILD_HEADER.pack(len(body), len(serving)) + body + serving)
    finally:
        os._exit(0)


def _isolate(*keep: int) -> None:
    """A session of its own, and no inherited descriptor but the two pipe ends."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for standard in (0, 1, 2):
        os.dup2(devnull, standard)
    start = 3
    for fd in sorted(keep):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 65536)


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


def _compiled_form(
    estimator: Any, description: Any, example: list[Any] | None, max_bytes: int
) -> bytes:
    """A tree ensemble's compiled form, if it answers exactly as the estimator; else b""."""
    features = example_features(description, example) if example is not None else None
    form = exact_form(estimator, features)
    if form is None:
        return b""
    compiled = form.to_bytes()
    try:
        load_compiled(compiled)  # what predict will check: a form it would refuse is not kept
    except CompiledFormError:
        return b""
    return compiled if len(compiled) <= max_bytes else b""


def _serving_copy(estimator: Any, max_bytes: int) -> bytes:
    try:
        serving = serving_bytes(estimator)
    except Exception:  # an estimator plain pickle cannot hold: predict loads the artifact
        return b""
    return serving if len(serving) <= max_bytes else b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    serve_zygote(socket.socket(fileno=int(sys.argv[1])))
