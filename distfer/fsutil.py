"""Atomic file and directory writes, and output-path checks.

Nothing distfer writes may look complete when it is not: files are written to a temporary
sibling and renamed; directories are built under a temporary sibling name and renamed into
place as a whole, after a completion marker has been written inside them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from distfer.errors import DataError

COMPLETE_MARKER = "_COMPLETE"


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide and not thread-safe


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; shared storage needs the umask's mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary sibling name and move it to ``final`` on success.

    Yields the temporary directory. On a clean exit a ``_COMPLETE`` marker is written into it
    and it is renamed to ``final`` (replacing an existing ``final`` only when ``overwrite``);
    on an exception, or if the process is killed, ``final`` is untouched and the temporary
    directory is removed (or left with a ``.tmp-`` name that nothing reads).

    Raises:
        DataError: ``final`` exists and ``overwrite`` is false.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not overwrite:
        raise DataError(f"{final} already exists; remove it or choose another output path")
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        if final.exists():
            trash = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_complete(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a directory that :func:`atomic_directory` finished."""
    return (Path(path) / COMPLETE_MARKER).is_file()


def ensure_output_dir(path: str | os.PathLike[str], *, what: str = "output directory") -> Path:
    """Resolve ``path``, create it if needed and check that it is a writable directory.

    Raises:
        DataError: ``path`` is an existing file, or cannot be created or written.
    """
    p = Path(path).expanduser().resolve()
    if p.exists() and not p.is_dir():
        raise DataError(f"{what} {p} is a file, not a directory; pass a directory path")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create {what} {p}: {e.strerror}; choose a writable location") from e
    if not os.access(p, os.W_OK | os.X_OK):
        raise DataError(f"{what} {p} is not writable; fix its permissions or choose another path")
    try:  # os.access says yes to root everywhere; /sys, read-only mounts etc. still refuse
        fd, probe = tempfile.mkstemp(prefix=".distfer-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise DataError(f"{what} {p} is not writable ({e.strerror}); choose a writable location") from e
    return p


def require_file(path: str | os.PathLike[str], *, what: str = "file") -> Path:
    """Resolve ``path`` and check that it is an existing regular file.

    Raises:
        DataError: the file does not exist or is a directory.
    """
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise DataError(f"{what} {p} does not exist; check the path")
    if not p.is_file():
        raise DataError(f"{what} {p} is not a regular file; check the path")
    return p


def require_dir(path: str | os.PathLike[str], *, what: str = "directory") -> Path:
    """Resolve ``path`` and check that it is an existing directory.

    Raises:
        DataError: the directory does not exist or is a file.
    """
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise DataError(f"{what} {p} does not exist; check the path")
    if not p.is_dir():
        raise DataError(f"{what} {p} is not a directory; check the path")
    return p
