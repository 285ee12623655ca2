"""The filesystem storage driver: one directory tree, fsync before anything is called durable."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from dockyard.storage.driver import FileInfo, PathBusy, PathNotFound, StorageError, StorageFull
from dockyard.storage.permissions import OWNER_ONLY, Modes, make_dirs

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def _failure(doing: str, exc: OSError) -> StorageError:
    """The driver's error for a failed system call: StorageFull when space or quota ran out."""
    if exc.errno in _NO_SPACE:
        return StorageFull(f"cannot {doing}: no space left for blob storage ({exc.strerror})")
    return StorageError(f"cannot {doing}: {exc.strerror}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileWriter:
    """Appends to one file; `commit` fsyncs the file and its directory entry."""

    def __init__(self, path: Path, resume_at: int, exclusive: bool, modes: Modes) -> None:
        self._path = path
        try:
            make_dirs(path.parent, modes.directory)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, modes.file)
            self._file = os.fdopen(fd, "ab")
        except OSError as exc:
            raise _failure(f"open {path.name} for writing", exc) from exc
        try:
            # One writer at a time, before truncating: a second would cut or interleave the first's bytes.
            # The lock goes with the file descriptor, at close or process death.
            if exclusive:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._file.seek(0, os.SEEK_END)
            if self._file.tell() != resume_at:
                self._file.truncate(resume_at)
                self._file.seek(resume_at)
        except BlockingIOError:
            self._file.close()
            raise PathBusy(f"{path.name} is being written by another request") from None
        except OSError as exc:
            self._file.close()
            raise _failure(f"open {path.name} for writing", exc) from exc
        self._size = self._file.tell()

    @property
    def size(self) -> int:
        """Bytes in the file so far."""
        return self._size

    @property
    def state(self) -> None:
        """The file and its size say all a later writer needs."""
        return None

    def write(self, data: bytes) -> None:
        """Append data."""
        try:
            self._file.write(data)
        except OSError as exc:
            raise _failure("write", exc) from exc
        self._size += len(data)

    def flush(self) -> None:
        """Write Python's buffer to the file, without waiting for the disk."""
        try:
            self._file.flush()
        except OSError as exc:
            raise _failure("write", exc) from exc

    def commit(self) -> None:
        """Flush and fsync, so a crash cannot lose or tear what was written."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise _failure("sync", exc) from exc

    def close(self) -> None:
        """Close the file, dropping bytes still buffered if they cannot be written.

        Every path that keeps what it wrote flushes or commits first; a close that still finds bytes to
        write follows a failure (a full disk) that the caller is already handling.
        """
        # The descriptor is closed even when the last flush fails, releasing the lock and the space.
        with contextlib.suppress(OSError):
            self._file.close()


class FilesystemDriver:
    """Stores objects as files under a root directory."""

    def __init__(self, root: Path, modes: Modes = OWNER_ONLY) -> None:
        self.root = root.resolve()
        self.modes = modes
        make_dirs(self.root, modes.directory)

    def _full(self, path: str) -> Path:
        parts = [p for p in path.split("/") if p]
        if not parts or any(p in {".", ".."} for p in parts):
            raise StorageError(f"invalid storage path {path!r}")
        return self.root.joinpath(*parts)

    def stat(self, path: str) -> FileInfo:
        """Size and modification time."""
        try:
            st = self._full(path).stat()
        except FileNotFoundError as exc:
            raise PathNotFound(path) from exc
        except OSError as exc:
            raise _failure(f"stat {path}", exc) from exc
        return FileInfo(path=path, size=st.st_size, modified=st.st_mtime)

    def read(
        self, path: str, offset: int = 0, chunk_size: int = 1 << 20, length: int | None = None
    ) -> Iterator[bytes]:
        """Stream the file from offset."""
        try:
            handle = open(self._full(path), "rb")  # noqa: SIM115 - closed in the generator's finally
        except FileNotFoundError as exc:
            raise PathNotFound(path) from exc
        return self._chunks(handle, offset, chunk_size, length)

    @staticmethod
    def _chunks(handle: BinaryIO, offset: int, chunk_size: int, length: int | None) -> Iterator[bytes]:
        with handle:
            handle.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                chunk = handle.read(chunk_size if remaining is None else min(chunk_size, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def local_file(self, path: str) -> Path | None:
        """The file itself."""
        return self._full(path)

    def redirect_url(self, path: str) -> str | None:
        """Files have no URL of their own."""
        return None

    def writer(
        self, path: str, resume_at: int = 0, state: bytes | None = None, exclusive: bool = False
    ) -> FileWriter:
        """Open for appending at resume_at (truncating what lies past it); exclusive takes a non-blocking
        flock(2), which keeps a second writer of this node (not of another node over NFS) out."""
        return FileWriter(self._full(path), resume_at, exclusive, self.modes)

    def move(self, source: str, destination: str) -> None:
        """rename(2) is atomic; fsync the destination directory so the new name survives a crash."""
        src, dst = self._full(source), self._full(destination)
        try:
            make_dirs(dst.parent, self.modes.directory)
            # rename(2) keeps the mtime; the move is what makes the object new (as a copy would on object
            # stores), so age-based clean-ups (GC's grace period) must not see it as old. Touched before the
            # rename, the destination never appears with an old time.
            os.utime(src)
            os.replace(src, dst)
            _fsync_dir(dst.parent)
        except FileNotFoundError as exc:
            raise PathNotFound(source) from exc
        except OSError as exc:
            raise _failure(f"move {source}", exc) from exc

    def delete(self, path: str) -> None:
        """Remove a file or a directory tree."""
        full = self._full(path)
        try:
            if full.is_dir():
                shutil.rmtree(full)
            else:
                full.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return
            raise StorageError(f"cannot delete {path}: {exc.strerror}") from exc

    def walk(self, prefix: str) -> Iterator[FileInfo]:
        """Every file under prefix."""
        base = self._full(prefix)
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                full = Path(dirpath) / name
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue
                yield FileInfo(
                    path=full.relative_to(self.root).as_posix(), size=st.st_size, modified=st.st_mtime
                )
