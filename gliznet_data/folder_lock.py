"""An exclusive lock on an output folder: two runs never write one folder at once.

Every command that writes into a folder it may share with another run (``generate``, ``batch ingest``,
``annotate``) takes ``FolderLock(folder, command)`` before it reads or writes anything there.

The lock is ``flock`` on ``<folder>/.gliznet.lock``. The kernel drops it when the holding process ends
in any way, ``kill -9`` included, so a stale lock cannot outlive its holder: the next run simply takes
it over. The file holds the holder's pid, host, command and start time, for the message the next
comer sees. A run that ends removes the file while still holding the lock; whoever locked the removed
file meanwhile sees that the path no longer names it and tries again, so two runs never both hold a
lock. Taking the lock also proves the folder writable, before any paid work.

Standard library only, so that any tool writing such folders can take the same lock without
importing the rest of gliznet_data.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; the holder file is still written, nothing is enforced
    fcntl = None  # type: ignore[assignment]

from .errors import UserError

LOCK_FILE = ".gliznet.lock"


class FolderInUse(UserError):
    """Another live process holds the folder's lock."""

    def __init__(self, folder: Path, holder: dict[str, Any]):
        self.holder = holder
        who = f"pid {holder.get('pid', '?')}"
        if holder.get("host") and holder["host"] != socket.gethostname():
            who += f" on {holder['host']}"
        since = f" since {holder['started']}" if holder.get("started") else ""
        command = holder.get("command") or "another run"
        super().__init__(f"{folder} is in use by {command} ({who}{since}); wait for it to end, or use another "
                         "output folder")


def read_holder(folder: Path) -> dict[str, Any]:
    """What the lock file says about its (last) holder; empty when unreadable."""
    try:
        holder = json.loads((Path(folder) / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


class FolderLock:
    """``with FolderLock(folder, "gliznet-data generate"):`` or ``acquire()`` / ``release()``."""

    def __init__(self, folder: Path, command: str):
        self.folder = Path(folder)
        self.command = command
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FolderLock:
        """Take the lock (creating the folder), or raise ``FolderInUse`` naming the holder's pid; a folder
        that cannot be written is a UserError here, not after the work."""
        if self._fd is not None:
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create output folder {self.folder}: {exc.strerror}") from None
        path = self.folder / LOCK_FILE
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise UserError(f"cannot write to output folder {self.folder}: {exc.strerror}") from None
            if fcntl is None:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise FolderInUse(self.folder, read_holder(self.folder)) from None
            except OSError as exc:  # ENOLCK: a filesystem without locks
                os.close(fd)
                raise UserError(f"cannot lock output folder {self.folder}: {exc.strerror}") from None
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    break  # the file we locked is still the lock file
            except FileNotFoundError:
                pass
            os.close(fd)  # its holder removed it as we locked it: lock the new one
        try:
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                      "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
                _probe(self.folder)
            except OSError as exc:
                raise UserError(f"cannot write to output folder {self.folder}: {exc.strerror}") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                (self.folder / LOCK_FILE).unlink(missing_ok=True)  # removed while still held, then unlocked
            except OSError:
                pass  # a folder gone read-only: the file stays, unlocked, and the next run takes it over
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _probe(folder: Path) -> None:
    """Create and remove a file: a folder can refuse new files while its lock file stays writable."""
    probe = folder / f".gliznet-probe-{os.getpid()}.tmp"
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
    probe.unlink()
