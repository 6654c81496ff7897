"""The attempt runner: one small supervisor per attempt, like Slurm's ``slurmstepd``.

    python -I -S runner.py ATTEMPT_DIR

The local executor starts it detached (a session of its own) for every attempt. It runs as the control plane's
user (root in production) and uses nothing but the standard library. It reads ``launch.json``, which the executor
wrote, and keeps all of its records in the attempt directory, which belongs to the control plane, so that the job
can neither read another job's records nor forge its own:

1. It **claims** the attempt: it makes a directory of its own holding ``runner.json`` (its pid and start time) and
   renames it to ``claim/``. The rename is atomic and fails if ``claim/`` exists, so a second runner for the same
   attempt exits at once, and a claim always names its runner. An attempt therefore never runs twice, however
   often it is started.
2. It stops here if ``stop`` exists: the daemon asked for the stop before the job began.
3. It becomes a **child subreaper**. Every process the job starts stays its descendant even after a double fork
   and ``setsid``. Where the host allows, the job also gets a **cgroup** of its own, with ``pids.max`` and
   ``memory.max`` (its memory request) where those controllers are there. It then forks the job:
   - a new session and process group, in that cgroup;
   - the tenant's uid, gid and groups (nothing of root's is kept), with ``RLIMIT_NPROC`` capping the processes
     of that uid, so that no tenant can take the machine's last pid, and ``no_new_privs``, so that no setuid
     program can give it more;
   - a parent-death signal (SIGKILL), so the job dies if the runner is killed;
   - ``work/`` as its cwd, and the clean environment from ``launch.json``;
   - stdout and stderr to ``stdout.log`` and ``stderr.log``, which the runner opened and gave to the tenant's uid.
     The job cannot replace them by links, because the directory they are in is not its own.
4. It records the real start in ``status.json``, then waits. SIGTERM, SIGINT or SIGHUP from the daemon mean
   *stop*: the whole tree gets SIGTERM, then SIGKILL after ``kill_wait_s``, like Slurm's ``KillWait``. When the
   job's main process exits, whatever it left behind is stopped the same way. SIGUSR1 from the daemon means
   *checkpoint now, you will be stopped soon* (its award is running out): it is passed on to the job's processes
   that catch SIGUSR1, and to no other, since its default action would end them.
5. Only when no process of the attempt is left does it write the end time, the exit status and the reason to
   ``status.json`` (through a rename, so the file is whole or absent). The daemon bills from these times. They are
   the times the GPUs were really held.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import resource
import signal
import sys
import time
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
CHECKPOINT_SIGNAL = signal.SIGUSR1  # from the daemon: passed on to the job, which should checkpoint now
WATCHED = {*STOP_SIGNALS, CHECKPOINT_SIGNAL, signal.SIGCHLD}


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _write_json(name: str, data: dict[str, Any]) -> None:
    tmp = name + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, name)


def proc_start(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22), or None if it is gone
    or a zombie. With the pid it names one process for good: a pid may be reused, the pair may not."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (its children, theirs, ...), from ``/proc``."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if fields[0] not in (b"Z", b"X"):
            children.setdefault(int(fields[1]), []).append(int(name))
    out: list[int] = []
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            out.append(pid)
            todo.append(pid)
    return out


def catching(pids: list[int], sig: int) -> list[int]:
    """The processes among ``pids`` that have a handler for ``sig`` (``SigCgt`` in ``/proc/PID/status``). Only those
    get the checkpoint signal: its default action would end a program that does not expect it."""
    out = []
    bit = 1 << (int(sig) - 1)
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                caught = next((int(line.split()[1], 16) for line in f if line.startswith("SigCgt:")), 0)
        except (OSError, ValueError):
            continue
        if caught & bit:
            out.append(pid)
    return out


def cgroup_pids(cgroup: str | None) -> list[int]:
    if not cgroup:
        return []
    try:
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except (FileNotFoundError, ValueError):
        return []


def kill_cgroup(cgroup: str | None) -> None:
    """Kill every process in the cgroup at once (``cgroup.kill``, Linux 5.14+); harmless where it is missing."""
    if cgroup:
        with contextlib.suppress(OSError), open(os.path.join(cgroup, "cgroup.kill"), "w") as f:
            f.write("1")


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _open_log(name: str, uid: int | None, gid: int | None) -> int:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    if uid is not None and gid is not None:
        os.fchown(fd, uid, gid)
    return fd


def _workdir(uid: int | None, gid: int | None) -> None:
    for path in ("work", "work/tmp"):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        if uid is not None and gid is not None:
            os.lchown(path, uid, gid)


def _child(launch: dict[str, Any], out: int, err: int, cgroup: str | None, report: int, runner: int) -> None:
    """In the forked child: become the job. Never returns."""
    try:
        os.setsid()
        if cgroup:
            with contextlib.suppress(OSError), open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write("0")
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, *STOP_SIGNALS, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.chdir("work")
        uid, gid = launch.get("uid"), launch.get("gid")
        if uid is not None and gid is not None:
            procs = launch.get("max_procs")
            if procs:
                resource.setrlimit(resource.RLIMIT_NPROC, (int(procs), int(procs)))
            os.setgroups([int(g) for g in launch.get("groups") or ()])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        # No privilege can be gained back (a setuid program runs as the job's uid: Kubernetes'
        # allowPrivilegeEscalation=false). A change of uid clears the parent-death signal, so it is set afterwards;
        # if the runner is already gone, leave now rather than run unsupervised.
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != runner:
            os._exit(137)
        os.umask(0o022)
        command = launch["command"]
        os.execvpe(command[0], command, launch["env"])
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.write(report, f"{exc.errno} {exc.strerror}".encode())
            # Where the tenant looks first: its own stderr.
            os.write(2, f"gigafactory: cannot execute {launch['command'][0]!r}: {exc.strerror}\n".encode())
        os._exit(127 if exc.errno == errno.ENOENT else 126)
    except BaseException:
        os._exit(126)


def run(attempt_dir: str) -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)  # handled in order by sigtimedwait below, never lost
    os.chdir(attempt_dir)
    me = os.getpid()
    mine = f"claim.{me}"
    os.mkdir(mine, 0o700)
    _write_json(f"{mine}/runner.json", {"pid": me, "start": proc_start(me)})
    try:
        os.rename(mine, "claim")
    except OSError:  # claim/ exists (and is not empty): another runner has this attempt
        os.unlink(f"{mine}/runner.json")
        os.rmdir(mine)
        return 0
    with open("launch.json") as f:
        launch = json.load(f)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if os.path.exists("stop"):
        now = time.time()
        _write_json("status.json", {"started": None, "ended": now, "exit_code": None, "stopped": True,
                                    "reason": "stopped before it started"})  # fmt: skip
        return 0
    uid, gid = launch.get("uid"), launch.get("gid")
    kill_wait = float(launch.get("kill_wait_s", 10.0))
    out, err = _open_log("stdout.log", uid, gid), _open_log("stderr.log", uid, gid)
    _workdir(uid, gid)
    cgroup = launch.get("cgroup")
    if cgroup:
        try:
            os.mkdir(cgroup)
        except FileExistsError:
            pass
        except OSError:
            cgroup = None
    if cgroup:
        mem = max(launch.get("mem_mib") or [0])
        for name, value in (("pids.max", launch.get("max_procs")), ("memory.max", mem * 1024 * 1024 if mem else None)):
            if value:
                with contextlib.suppress(OSError), open(os.path.join(cgroup, name), "w") as f:
                    f.write(str(value))
    r, w = os.pipe2(os.O_CLOEXEC)
    started = time.time()
    _write_json("status.json", {"started": started})
    try:
        child = os.fork()
    except OSError as exc:  # the machine is out of processes or memory for a moment: not the job's fault
        _write_json("status.json", {"started": None, "ended": time.time(), "exit_code": None, "interrupted": True,
                                    "reason": f"could not start it: {exc.strerror}"})  # fmt: skip
        return 0
    if child == 0:
        os.close(r)
        _child(launch, out, err, cgroup, w, me)
    os.close(w)
    os.close(out)
    os.close(err)
    _write_json("claim/runner.json", {"pid": me, "start": proc_start(me), "child": child, "cgroup": cgroup})
    failed = b""
    while chunk := os.read(r, 512):  # closed on a successful exec, or carries the errno of a failed one
        failed += chunk
    os.close(r)

    code: int | None = None
    sig: int | None = None
    stopped = False
    term_at: float | None = None
    main_done = False
    while True:
        while True:  # reap everything that has ended: the job, and orphans handed to us as subreaper
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == child:
                main_done = True
                if os.WIFSIGNALED(status):
                    sig = os.WTERMSIG(status)
                    code = 128 + sig
                else:
                    code = os.waitstatus_to_exitcode(status)
        if main_done or term_at is not None:
            left = sorted(set(descendants(me)) | set(cgroup_pids(cgroup)))
            if not left:
                if main_done:
                    break
            elif term_at is None:  # the main process is gone, and left these behind: stop them too
                term_at = time.monotonic()
                _signal_all(left, signal.SIGTERM)
            elif time.monotonic() - term_at >= kill_wait:
                kill_cgroup(cgroup)
                _signal_all(left, signal.SIGKILL)
        timeout = 1.0 if term_at is None and not main_done else 0.05
        info = signal.sigtimedwait(WATCHED, timeout)
        if info is not None and info.si_signo == CHECKPOINT_SIGNAL and not stopped:
            _signal_all(catching(sorted(set(descendants(me)) | set(cgroup_pids(cgroup))), CHECKPOINT_SIGNAL),
                        CHECKPOINT_SIGNAL)  # fmt: skip
            continue
        if info is not None and info.si_signo in STOP_SIGNALS and not stopped:
            stopped = True
            term_at = time.monotonic()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child, signal.SIGTERM)
            _signal_all(descendants(me), signal.SIGTERM)
    ended = time.time()
    if failed:
        num, _, text = failed.decode(errors="replace").partition(" ")
        reason = f"cannot execute {launch['command'][0]!r}: {text or os.strerror(int(num))}"
    elif sig is not None:
        reason = f"killed by {signal.Signals(sig).name}"
    elif code:
        reason = f"exit code {code}"
    else:
        reason = ""
    if stopped:
        reason = "stopped" + (f" ({reason})" if reason else "")
    _write_json("status.json", {"started": started, "ended": ended, "exit_code": code, "signal": sig,
                                "stopped": stopped, "exec_failed": bool(failed), "reason": reason})  # fmt: skip
    if cgroup:
        with contextlib.suppress(OSError):
            os.rmdir(cgroup)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
