"""A file written whole or not at all: a process stopped while writing it (killed, power lost) leaves
either nothing or the complete file, never a half one that every later start would refuse or misread."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_whole(path: Path, data: bytes, mode: int = 0o666, replace: bool = True) -> bool:
    """``data`` at ``path``: written beside it, flushed to the disk, then moved into place. With
    ``replace`` False only if nothing is there yet (another process's file is kept: returns False).
    ``mode`` as for ``os.open`` (the umask applies)."""
    partial = path.with_name(path.name + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(partial, path)
            return True
        with contextlib.suppress(FileExistsError):
            os.link(partial, path)
            return True
        return False
    finally:
        partial.unlink(missing_ok=True)
