"""One training run per run folder: the same `.gliznet.lock` protocol as gliznet-data's output folders.

`flock` on `<run folder>/.gliznet.lock`, holding the holder's pid, host, command and start time. The kernel drops the
lock when its process ends in any way (kill -9 included), so a stale file never blocks the next run. gliznet_model
does not import gliznet_data, so the protocol is restated here (file name, JSON holder, flock, removal while held);
the two tools then lock each other out of a folder.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: nothing is enforced
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".gliznet.lock"


class RunLock:
    """`with RunLock(run_dir, "gliznet-model train"):`; raises ValueError naming the holder when the folder is busy."""

    def __init__(self, folder: Path, command: str) -> None:
        self.folder, self.command, self._fd = Path(folder), command, None

    def __enter__(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK_FILE
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            if fcntl is None:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                try:
                    holder = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    holder = {}
                raise ValueError(f"{self.folder} is in use by {holder.get('command', 'another run')} "
                                 f"(pid {holder.get('pid', '?')}); wait for it to end, or train into another "
                                 "--output-dir") from None
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    break  # still the lock file: its last holder did not remove it as we locked it
            except FileNotFoundError:
                pass
            os.close(fd)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                  "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                (self.folder / LOCK_FILE).unlink(missing_ok=True)  # removed while still held, then unlocked
            except OSError:
                pass
            os.close(fd)
