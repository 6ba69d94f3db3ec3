"""What the kernel gives an unprivileged process to keep an artifact's code from everything else.

The validator (registry/inspecting/worker.py), its zygote and the zygote's children
(registry/inspecting/sandbox.py) use these, each where it applies. Every measure is one switch of
SandboxMeasures, so that a test can show what each one stops (tests/integration/
test_sandbox_attacks.py), and each is tried where it may not exist: what Lambda refuses
is left out there, and said so (docs/reliability.md has the table of what runs where).

Only the standard library is imported here: the zygote calls some of these before it
imports anything else (a namespace can only be entered by a process with one thread).
"""

import contextlib
import ctypes
import errno
import os
import platform
import resource
import shutil
import signal
import struct
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path

_PR_SET_DUMPABLE = 4
_PR_SET_SECCOMP = 22
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_MODE_FILTER = 2
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_MOVE, _MS_REC, _MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
_MS_NOATIME, _MS_NODIRATIME, _MS_RELATIME = 1024, 2048, 1 << 21
# statvfs's f_flag bits, and the mount flag each stands for (kept when a mount is remounted:
# a user namespace may not clear them).
_KEPT_MOUNT_FLAGS = {
    os.ST_NOSUID: _MS_NOSUID,
    os.ST_NODEV: _MS_NODEV,
    os.ST_NOEXEC: _MS_NOEXEC,
    os.ST_NOATIME: _MS_NOATIME,
    os.ST_NODIRATIME: _MS_NODIRATIME,
    os.ST_RELATIME: _MS_RELATIME,
}
# Inside the sandbox's user namespace the process is this user, not root: a program it could
# execute gets no capability from being root there.
SANDBOX_UID = 1000


@dataclass(frozen=True)
class SandboxMeasures:
    """Each way the validator keeps an artifact's code in its own child. All on by default;
    SANDBOX_MEASURES_OFF (local servers only) names any to leave off."""

    # A user and mount namespace where every mount is read-only, with a private, empty tmpfs
    # on /tmp, and a /dev of null, zero, random and an empty shm only (local Linux; Lambda's
    # filesystem is read-only but /tmp already).
    private_filesystem: bool = True
    # The zygote as the init of a PID namespace with its own /proc: a child can name no other
    # process, and all die with the zygote (local Linux).
    own_processes: bool = True
    # -P -s, working directory /, a PYTHONPATH of code only; refuse a writable sys.path entry.
    safe_import_path: bool = True
    # Everything a child may import is imported before the zygote forks; a child imports
    # nothing new.
    preimport: bool = True
    # The zygote in a network namespace of its own: no network at all (local Linux).
    no_network: bool = True
    # A child may not signal, trace or read another process, start one, or enter namespaces.
    seccomp: bool = True
    # A child's address space, file sizes and process count are bounded.
    resource_limits: bool = True
    # Every descendant is stopped and killed after each validation, until none is left.
    reap: bool = True

    @classmethod
    def without(cls, names: Iterable[str]) -> "SandboxMeasures":
        known = {field.name for field in fields(cls)}
        off = {name.strip() for name in names if name.strip()}
        unknown = off - known
        if unknown:
            raise ValueError(
                f"unknown sandbox measure {sorted(unknown)}: the measures are {sorted(known)}"
            )
        return replace(cls(), **dict.fromkeys(off, False))

    def off(self) -> list[str]:
        return [field.name for field in fields(self) if not getattr(self, field.name)]


class SandboxRefused(Exception):
    """The sandbox will not run here: its import path could be written by an artifact."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def prctl(option: int, value: int) -> bool:
    """Whether the kernel took the setting (not on other systems, nor where seccomp refuses)."""
    with contextlib.suppress(OSError, AttributeError):
        return int(_libc().prctl(option, value, 0, 0, 0)) == 0
    return False


def make_undumpable() -> None:
    """No process of the same user may read this one's memory or trace it."""
    prctl(_PR_SET_DUMPABLE, 0)


def become_subreaper() -> bool:
    """Orphans of this process's descendants become its children, not init's."""
    return prctl(_PR_SET_CHILD_SUBREAPER, 1)


def forbid_new_privileges() -> bool:
    """Nothing this process executes gains a privilege (and seccomp may then be installed)."""
    return prctl(_PR_SET_NO_NEW_PRIVS, 1)


def _write(path: str, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def _enter_user_namespace(flags: int) -> None:
    """A new user namespace (and the other namespaces in flags), as SANDBOX_UID inside it.

    Raises OSError, having changed nothing, where the kernel refuses the namespaces; once
    they are made, a failure to map this user in them is a RuntimeError: the process is
    then in namespaces it cannot use, and must not go on."""
    uid, gid = os.getuid(), os.getgid()
    os.unshare(os.CLONE_NEWUSER | flags)
    try:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{SANDBOX_UID} {uid} 1")
        _write("/proc/self/gid_map", f"{SANDBOX_UID} {gid} 1")
    except OSError as exc:
        raise RuntimeError(f"entered namespaces but could not map its user: {exc}") from exc


def _mount(source: str | None, target: str, kind: str | None, flags: int, data: str = "") -> None:
    encoded = [None if value is None else value.encode() for value in (source, target, kind)]
    if _libc().mount(*encoded, flags, data.encode() or None) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mount {target}: {os.strerror(code)}")


def _mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        points.append(point)
    return points


def enter_private_filesystem(network: bool = False, processes: bool = False) -> bool:
    """A user, mount and IPC namespace in which every mount is read-only, /tmp is a private, empty
    tmpfs, and /dev holds only null, zero, full, random, urandom and an empty shm. With
    network, a network namespace with no interface up, too; with processes, a PID namespace
    (whose first child becomes its init: see own_proc). False where the kernel refuses it
    (Lambda, other systems, a process with threads); nothing is changed then.

    The caller keeps the capabilities of the namespace it made until it drops them; a program
    it starts does not get them (it runs as SANDBOX_UID, not root).
    """
    if not sys.platform.startswith("linux") or not hasattr(os, "unshare"):
        return False
    flags = os.CLONE_NEWNS | os.CLONE_NEWIPC | (os.CLONE_NEWNET if network else 0)
    try:
        _enter_user_namespace(flags | (os.CLONE_NEWPID if processes else 0))
    except OSError:
        return False
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    for point in _mount_points():
        if point == "/proc" or point.startswith("/proc/"):
            continue  # a namespace inside this one writes its maps there (own_proc hides it)
        with contextlib.suppress(OSError):  # a mount that stays writable fails the path check
            _remount_read_only(point)
    _mount_private_tmp()
    _mount_minimal_dev()
    return True


def _remount_read_only(point: str) -> None:
    """The mount at point, read-only, keeping the flags a user namespace may not clear."""
    kept = os.statvfs(point).f_flag
    remount = _MS_REMOUNT | _MS_BIND | _MS_RDONLY
    remount |= sum(flag for bit, flag in _KEPT_MOUNT_FLAGS.items() if kept & bit)
    _mount(None, point, None, remount)


def _code_paths() -> list[str]:
    """What this interpreter runs from: its import path, prefix and executable's folder."""
    found = {sys.prefix, sys.exec_prefix, os.path.dirname(sys.executable)}
    found |= {entry for entry in sys.path if entry and os.path.isdir(entry)}
    return sorted(os.path.realpath(path) for path in found if os.path.isdir(path))


def _mount_private_tmp() -> None:
    """An empty tmpfs over /tmp; the code this interpreter runs from, where it lives under
    /tmp (a clone in a `mktemp -d` folder), is bound back in its place, read-only."""
    under_tmp = [path for path in _code_paths() if path.startswith("/tmp/")]
    kept = [
        path for path in under_tmp if not any(path.startswith(f"{other}/") for other in under_tmp)
    ]
    handles = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in kept}
    try:
        _mount("tmpfs", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, f"mode=0755,size={SCRATCH_SIZE}")
        for path, handle in handles.items():
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{handle}", path, None, _MS_BIND | _MS_REC)
            _remount_read_only(path)
    finally:
        for handle in handles.values():
            os.close(handle)


# The size of each private tmpfs (/tmp, /dev/shm): a child's scratch, emptied after it.
SCRATCH_SIZE = "64m"
_DEVICES = ("null", "zero", "full", "random", "urandom")


def _mount_minimal_dev() -> None:
    """A /dev of a few harmless devices (bound from the real ones), standard streams and an
    empty shm: no kernel log, loop, fuse or tun device to reach."""
    staging = "/tmp/.dev"
    os.mkdir(staging)
    _mount("tmpfs", staging, "tmpfs", _MS_NOSUID | _MS_NOEXEC, "mode=0755,size=64k")
    for device in _DEVICES:
        open(f"{staging}/{device}", "w").close()
        _mount(f"/dev/{device}", f"{staging}/{device}", None, _MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        os.symlink(target, f"{staging}/{name}")
    os.symlink("/proc/self/fd/1", f"{staging}/stdout")
    os.symlink("/proc/self/fd/2", f"{staging}/stderr")
    os.mkdir(f"{staging}/shm")
    _mount(None, staging, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NOEXEC)
    _mount("tmpfs", f"{staging}/shm", "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={SCRATCH_SIZE}")
    _mount(staging, "/dev", None, _MS_MOVE)
    os.rmdir(staging)


def own_proc() -> None:
    """A /proc of this PID namespace's own (the caller is its init): no other process is
    named there, nor readable."""
    _mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)


def leave_the_network() -> bool:
    """A network namespace of its own (no interface is up): False where the kernel refuses it."""
    if not sys.platform.startswith("linux") or not hasattr(os, "unshare"):
        return False
    try:
        _enter_user_namespace(os.CLONE_NEWNET)
    except OSError:
        return False
    return True


def drop_capabilities() -> bool:
    """No capability in any set: what a user namespace gave this process is given back."""
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = bytes(24)  # two of {effective, permitted, inheritable}, all empty
    try:
        return int(_libc().capset(header, data)) == 0
    except (OSError, AttributeError):
        return False


def writable_import_paths(paths: Iterable[str]) -> list[str]:
    """The entries of an import path that this process could write to (the working directory
    for an empty entry): a module planted there would be imported."""
    found = []
    for entry in paths:
        path = entry or os.getcwd()
        target = path if os.path.isdir(path) else os.path.dirname(path)
        if os.path.exists(target) and os.access(target, os.W_OK):
            found.append(path)
    return found


def refuse_writable_import_path() -> None:
    """Raise SandboxRefused if this interpreter could import a module an artifact planted."""
    writable = writable_import_paths(sys.path)
    if writable:
        raise SandboxRefused(f"these import path entries are writable: {', '.join(writable)}")


# seccomp: classic BPF over struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6]}.
_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_JSET_K, _BPF_JGE_K, _BPF_RET_K = 0x20, 0x15, 0x45, 0x35, 0x06
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_CLONE_THREAD = 0x00010000
_X32_SYSCALL_BIT = 0x40000000
_NR, _ARCH, _ARG0, _ARG1 = 0, 4, 16, 24  # offsets in seccomp_data (an argument's low half)
# Syscall numbers: (x86_64, aarch64). Denied with EPERM: reaching into another process,
# changing namespaces and mounts, the kernel's keyrings, programs and log, io_uring (whose
# operations seccomp does not see), sockets, System V and POSIX message queues and shared
# memory (objects that outlive a process), and starting a program or a process (a thread
# is allowed). clone3 answers ENOSYS, so that the C library falls back to clone, whose flags
# the filter can read.
_DENIED = {
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "process_madvise": (440, 440),
    "kcmp": (312, 272),
    "pidfd_open": (434, 434),
    "pidfd_send_signal": (424, 424),
    "pidfd_getfd": (438, 438),
    "tkill": (200, 130),
    "setpriority": (141, 140),
    "ioprio_set": (251, 30),
    "migrate_pages": (256, 238),
    "move_pages": (279, 239),
    "unshare": (272, 97),
    "setns": (308, 268),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "syslog": (103, 116),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "socket": (41, 198),
    "socketpair": (53, 199),
    "shmget": (29, 194),
    "msgget": (68, 186),
    "semget": (64, 190),
    "mq_open": (240, 180),
    "execve": (59, 221),
    "execveat": (322, 281),
    "fork": (57, None),
    "vfork": (58, None),
}
# Calls whose first argument names a process: allowed for this process only (0 or its pid;
# a signal, also its own process group).
_SIGNALS = {"kill": (62, 129), "tgkill": (234, 131), "rt_sigqueueinfo": (129, 138)}
_ON_ITSELF = {
    "rt_tgsigqueueinfo": (297, 240),
    "prlimit64": (302, 261),
    "sched_setaffinity": (203, 122),
    "sched_setscheduler": (144, 119),
    "sched_setparam": (142, 118),
    "sched_setattr": (314, 274),
}
# Calls whose second argument asks the kernel to signal a process of the caller's choosing
# (a descriptor's owner, a terminal's process group) or to type into a terminal: refused.
_F_SETOWN, _F_SETSIG, _F_SETOWN_EX = 8, 10, 15
_FIOSETOWN, _SIOCSPGRP, _TIOCSCTTY, _TIOCSPGRP, _TIOCSTI = 0x8901, 0x8902, 0x540E, 0x5410, 0x5412
_REFUSED_REQUESTS = {
    "fcntl": ((72, 25), (_F_SETOWN, _F_SETSIG, _F_SETOWN_EX)),
    "ioctl": ((16, 29), (_FIOSETOWN, _SIOCSPGRP, _TIOCSCTTY, _TIOCSPGRP, _TIOCSTI)),
}
_CLONE, _CLONE3 = (56, 220), (435, 435)
_ARCHES = {"x86_64": (0, 0xC000003E), "amd64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7)}
Instruction = tuple[int, int, int, int]
_ALLOW: Instruction = (_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW)
_EPERM: Instruction = (_BPF_RET_K, 0, 0, _SECCOMP_RET_ERRNO | errno.EPERM)
_ENOSYS: Instruction = (_BPF_RET_K, 0, 0, _SECCOMP_RET_ERRNO | errno.ENOSYS)


def _load(offset: int) -> Instruction:
    return (_BPF_LD_W_ABS, 0, 0, offset)


def _by_argument(
    number: int, offset: int, values: list[int], matched: Instruction, otherwise: Instruction
) -> list[Instruction]:
    """For this system call: `matched` if the argument at offset is one of values, else
    `otherwise`; other calls go on to the next block (with the number loaded again)."""
    block: list[Instruction] = [(_BPF_JEQ_K, 0, 3 + len(values), number), _load(offset)]
    for index, value in enumerate(values):
        block.append((_BPF_JEQ_K, len(values) - index, 0, value & 0xFFFFFFFF))
    return [*block, otherwise, matched, _load(_NR)]


def _filter_program(own_pid: int) -> list[Instruction] | None:
    """The filter for this machine's architecture, or None where none is written."""
    arch = _ARCHES.get(platform.machine().lower())
    if arch is None:
        return None
    column, audit_arch = arch
    itself = [own_pid, 0]
    program: list[Instruction] = [_load(_ARCH), (_BPF_JEQ_K, 1, 0, audit_arch), _EPERM, _load(_NR)]
    if column == 0:  # x32 system calls on x86_64
        program += [(_BPF_JGE_K, 0, 1, _X32_SYSCALL_BIT), _EPERM]
    for numbers in _DENIED.values():
        number = numbers[column]
        if number is not None:
            program += [(_BPF_JEQ_K, 0, 1, number), _EPERM]
    program += [(_BPF_JEQ_K, 0, 1, _CLONE3[column]), _ENOSYS]
    # clone: allowed for a thread only
    program += [(_BPF_JEQ_K, 0, 4, _CLONE[column]), _load(_ARG0)]
    program += [(_BPF_JSET_K, 0, 1, _CLONE_THREAD), _ALLOW, _EPERM]
    for numbers in _SIGNALS.values():
        program += _by_argument(numbers[column], _ARG0, [*itself, -own_pid], _ALLOW, _EPERM)
    for numbers in _ON_ITSELF.values():
        program += _by_argument(numbers[column], _ARG0, itself, _ALLOW, _EPERM)
    for numbers, requests in _REFUSED_REQUESTS.values():
        program += _by_argument(numbers[column], _ARG1, list(requests), _EPERM, _ALLOW)
    return [*program, _ALLOW]


def install_seccomp_filter() -> bool:
    """Deny this process (and what it starts) the system calls in _DENIED, and signals to any
    other process. Needs forbid_new_privileges() first. False where the kernel refuses it."""
    program = _filter_program(os.getpid())
    if program is None or not sys.platform.startswith("linux"):
        return False
    instructions = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(instructions)
    fprog = struct.pack("HxxxxxxQ", len(program), ctypes.addressof(buffer))
    try:
        result = _libc().prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, fprog, 0, 0)
    except (OSError, AttributeError):
        return False
    return int(result) == 0


def _processes_of_this_user() -> int:
    """Tasks (threads included) of this process's real user: what RLIMIT_NPROC counts."""
    uid, count = str(os.getuid()), 0
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            lines = status.read_text().splitlines()
            real = next(line.split()[1] for line in lines if line.startswith("Uid:"))
            if real == uid:
                count += int(next(line.split()[1] for line in lines if line.startswith("Threads:")))
    return count


def limit_resources(address_space_bytes: int, file_bytes: int, more_tasks: int) -> None:
    """Bound this process's address space and the files it writes, and let its user start at
    most more_tasks more threads or processes (root is exempt from that last one)."""
    resource.setrlimit(resource.RLIMIT_AS, (address_space_bytes, address_space_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    tasks = _processes_of_this_user() + more_tasks
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))


# What a process's children inherit and another process of the same user can change from
# outside (prlimit, setpriority, sched_setaffinity) where no seccomp filter prevents it.
_WATCHED_LIMITS = ("RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CPU")


def process_state() -> tuple[object, ...]:
    """This process's limits, priority and CPUs: compared before every fork."""
    limits = tuple(resource.getrlimit(getattr(resource, name)) for name in _WATCHED_LIMITS)
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    return (limits, os.getpriority(os.PRIO_PROCESS, 0), frozenset(cpus))


def address_space_bytes() -> int:
    """This process's virtual size now (what RLIMIT_AS counts)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _parents() -> dict[int, tuple[int, str]]:
    """Every process's parent and state, read from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1:
            found[int(stat.parent.name)] = (int(fields[1]), fields[0])
    return found


def descendants(ancestor: int) -> list[int]:
    """Every living process below ancestor, children first."""
    parents = _parents()
    below: list[int] = []
    frontier = {ancestor}
    while frontier:
        level = [pid for pid, (parent, _) in parents.items() if parent in frontier]
        below += [pid for pid in level if parents[pid][1] != "Z"]
        frontier = set(level)
    return below


def _reap_exited() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


def kill_descendants(ancestor: int | None = None, deadline_seconds: float = 5.0) -> int:
    """Stop, then kill, every process below ancestor (this one by default) until none is left;
    how many were killed.

    Stopped first, so that none can start another while the others are being killed; again
    until a whole look at /proc finds none. ancestor must be a subreaper, alive (stopped, if
    it is not this process), so that orphans stay below it. Raises TimeoutError if some
    still live after deadline_seconds.
    """
    root = os.getpid() if ancestor is None else ancestor
    killed = 0
    deadline = time.monotonic() + deadline_seconds
    while True:
        found = descendants(root)
        if ancestor is None:
            _reap_exited()
        if not found:
            return killed
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(found)} processes outlived their validation")
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in found:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        killed += len(found)
        time.sleep(0.002)


def kill_tree(root: int) -> int:
    """Stop root, kill everything below it, then root itself; how many processes died."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(root, signal.SIGSTOP)
    killed = kill_descendants(root)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(root, signal.SIGKILL)
    return killed + 1


def empty_directory(root: str, keep: Iterable[str] = ()) -> bool:
    """Remove everything in root but the entries named in keep, and those that hold a mount
    (code bound back into a private /tmp); whether nothing else is left. Folders a child
    made unreadable are opened up first (their owner may), so nothing hides there."""
    kept = set(keep)
    mounts = _mount_points() if sys.platform.startswith("linux") else []

    def removable(entry: os.DirEntry[str]) -> bool:
        return entry.name not in kept and not any(
            point == entry.path or point.startswith(f"{entry.path}/") for point in mounts
        )

    try:
        entries = [entry for entry in os.scandir(root) if removable(entry)]
    except OSError:
        return False
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _open_up(entry.path)
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
    try:
        return not [entry for entry in os.scandir(root) if removable(entry)]
    except OSError:
        return False


def _open_up(path: str) -> None:
    """Make every folder under path readable, writable and searchable by its owner."""
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700, follow_symlinks=False)
    for folder, subfolders, _ in os.walk(path):
        for name in subfolders:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(folder, name), 0o700, follow_symlinks=False)


def block_new_imports() -> None:
    """From now on, only modules already imported can be imported: any other raises
    ImportError, whatever file the import path holds."""

    class Blocked:
        @staticmethod
        def find_spec(name: str, path: object = None, target: object = None) -> None:
            raise ImportError(f"{name} was not imported before the sandbox forked")

    sys.meta_path[:] = [Blocked()]
    sys.path_importer_cache.clear()
    sys.path[:] = []
