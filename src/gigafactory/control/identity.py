"""Who a tenant's jobs run as.

A job never runs as root or as the control plane's own user. When the control plane runs as root (a production
install, and CI here), each tenant's jobs run under that tenant's own uid and gid:

* a tenant **mapped** to a Unix account (``gigafactory admin tenant NAME --unix-user U``) runs as U, with U's
  primary group and supplementary groups. The Slurm executor needs this: Slurm runs jobs as real accounts;
* any other tenant runs as a **dynamic uid** from :data:`DYNAMIC_UIDS`, chosen when the tenant is created, with
  gid = uid and no supplementary group. No host account is needed: this is systemd's ``DynamicUser``. A uid that
  the host's user or group database already knows is never chosen.

Two tenants never share a uid, not even tenants of two control planes on one host: a dynamic uid is claimed in a
host-wide registry (:class:`UidRegistry`, ``/var/lib/gigafactory/uids``) before it is used, and every start
claims its tenants' uids again (a tenant whose uid another control plane holds gets a new one). A claim is never
freed by guessing that its owner is gone (its data directory may sit in a mount namespace we cannot see, and files
it owns may outlive it): only :meth:`UidRegistry.release`, when a control plane is taken down on purpose, frees its
uids. A uid that any process runs as is never handed out. So a tenant can neither read nor signal another tenant's
files or processes. (``/proc`` still shows every process's command line to every user unless it is mounted with
``hidepid``; :func:`isolation_note` says so.)

When the control plane runs unprivileged (a laptop demo), it cannot change uid, so isolation is **off**: jobs run
as that user. They still get a clean environment and are contained and stopped as a whole. ``serve``, ``/health``
and the dashboard all say so.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gigafactory.core.errors import ConfigError

__all__ = [
    "DYNAMIC_UIDS",
    "Identity",
    "UidRegistry",
    "allocate_uid",
    "check_unix_user",
    "identity",
    "isolating",
    "isolation_note",
]

# systemd's DynamicUser range; a uid in use on the host (in /etc/passwd or /etc/group, or from NSS) is skipped.
DYNAMIC_UIDS = range(61184, 65520)


@dataclass(frozen=True, slots=True)
class Identity:
    """The uid, gid and groups a tenant's jobs run as; ``uid`` None means as the control plane (isolation off)."""

    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] = ()
    user: str | None = None  # the mapped account's name, if the tenant has one


def isolating() -> bool:
    """Jobs run under their tenants' own uids only when the control plane can change uid: as root."""
    return os.geteuid() == 0


def isolation_note() -> str:
    if isolating():
        note = "on: each tenant's jobs run under the tenant's own uid"
        if not _proc_hides_pids():
            note += "; /proc shows every process's command line to every user (mount it with hidepid=invisible)"
        return note
    user = _name(os.geteuid())
    return f"off: not running as root, so every job runs as {user} (the control plane's user)"


def _proc_hides_pids() -> bool:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return False
    try:
        for line in lines:
            pre, _, post = line.partition(" - ")
            if pre.split()[4] == "/proc" and "hidepid=" in post and "hidepid=0" not in post:
                return True
    except IndexError:
        pass
    return False


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _known_on_host(uid: int) -> bool:
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
            return True
        except KeyError:
            pass
    return False


class UidRegistry:
    """The host's record of which dynamic uid runs whose jobs, shared by every control plane on the host.

    One file per uid in ``path`` (root's, 0700), created with ``O_EXCL``, naming its owner (control plane and
    tenant) and the owner's data directory. A claim stands until its control plane releases it.
    """

    def __init__(self, owner: str, home: Path, path: Path | None = None) -> None:
        self.owner = owner  # "<plane id>"; a claim names "<plane id>/<tenant>"
        self.home = home
        env = os.environ.get("GIGAFACTORY_UID_REGISTRY")
        self.path = path or (Path(env) if env else Path("/var/lib/gigafactory/uids"))

    def claim(self, uid: int, tenant: str) -> bool:
        """Make ``uid`` this control plane's tenant's; False if another holds it."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        record = self.path / str(uid)
        try:
            fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            return record.read_text().split("\n", 1)[0] == f"{self.owner}/{tenant}"
        with os.fdopen(fd, "w") as f:
            f.write(f"{self.owner}/{tenant}\n{self.home}\n")
        return True

    def release(self) -> list[int]:
        """Free every uid this control plane holds (it is being taken down, its jobs gone). Returns them."""
        freed = []
        for record in self.path.glob("[0-9]*") if self.path.is_dir() else ():
            try:
                if record.read_text().split("/", 1)[0] == self.owner:
                    record.unlink()
                    freed.append(int(record.name))
            except (OSError, ValueError):
                continue
        return sorted(freed)


def _running_as() -> set[int]:
    """The real uids of every process on the host."""
    uids = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                uids.add(os.stat(f"/proc/{name}").st_uid)
            except OSError:
                continue
    return uids


def allocate_uid(taken: set[int], claim: Callable[[int], bool] | None = None) -> int:
    """The lowest dynamic uid not taken by another tenant, unknown to the host, that no process runs as, and
    (with ``claim``) claimed."""
    busy = _running_as()
    for uid in DYNAMIC_UIDS:
        if uid not in taken and uid not in busy and not _known_on_host(uid) and (claim is None or claim(uid)):
            return uid
    raise ConfigError(f"no dynamic uid left in {DYNAMIC_UIDS.start}-{DYNAMIC_UIDS.stop - 1}; map tenants to accounts")


def check_unix_user(name: str) -> int:
    """The uid of account ``name``, which a tenant's jobs may run as; a clear error if they may not."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(f"unix_user {name!r}: no such account on this host") from None
    if entry.pw_uid == 0:
        raise ConfigError(f"unix_user {name!r}: jobs never run as root")
    if entry.pw_uid == os.geteuid():
        raise ConfigError(f"unix_user {name!r}: that is the control plane's own account; jobs never run as it")
    return entry.pw_uid


def identity(unix_user: str | None, uid: int | None) -> Identity:
    """What a tenant's jobs run as, from its ``unix_user`` and dynamic ``uid`` (see the module docstring)."""
    if not isolating():
        return Identity()
    if unix_user:
        try:
            entry = pwd.getpwnam(unix_user)
        except KeyError:
            raise ConfigError(f"tenant's unix_user {unix_user!r} no longer exists on this host") from None
        if entry.pw_uid in (0, os.geteuid()):
            raise ConfigError(f"tenant's unix_user {unix_user!r} is root or the control plane's own account")
        groups = tuple(g for g in os.getgrouplist(unix_user, entry.pw_gid) if g != 0)
        return Identity(entry.pw_uid, entry.pw_gid, groups, unix_user)
    if uid is None:
        raise ConfigError("the tenant has no uid; restart the control plane to assign one")
    return Identity(uid, uid, (), None)
