"""The members of one layer's tar stream, read front to back with every header's cost bounded.

Python's `tarfile` reads a member's extension headers whole into memory before it returns the member:
pax records, GNU long names and links, and GNU sparse maps of every version (old GNU extension blocks,
pax 0.0 and 0.1 records, the 1.0 map in front of the data). Left alone, a layer of a few kilobytes
(compressed) can make it hold gigabytes or loop for ever. Here `tarfile` reads from a `LayerStream`, which
knows when a member's headers are being read and refuses to give more than `Limits.max_header_bytes` for
them, so every one of those structures is bounded by one limit, before it is allocated. Besides:

- a chain of extension headers in front of one member is bounded (`max_member_headers`), as are their
  bytes per layer (`max_layer_metadata_bytes`) and the members per layer and per image;
- pax global headers are skipped unread, as container runtimes do (Docker and containerd ignore them),
  so nothing accumulates across members;
- pax records are checked before `tarfile` parses them: malformed records, and digit runs its regular
  expressions would backtrack over for quadratic time (CVE-2024-6232 on Python before 3.11.10), are
  refused;
- sparse maps must be ordered, inside the file and inside the data stored for it;
- names and link names longer than `max_name_bytes` (PATH_MAX) are refused;
- no seek may go past the layer's byte limit, and a stream that ends inside a member's data is an error,
  so a huge declared size costs nothing.

Every refusal raises a `ScanError` subclass naming the layer, which fails the image's scan.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Callable, Iterator
from typing import Any, cast

from dockyard.scanning.errors import LayerFormatError, LimitExceededError
from dockyard.scanning.limits import Budget

__all__ = ["LayerStream", "iter_members"]

_CHUNK = 1 << 16
_BLOCK = tarfile.BLOCKSIZE
_EXTENSIONS = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)
_PAX = (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE)
_DIGITS = re.compile(rb"[0-9]+")
# The sum of squared digit-run lengths a pax header may hold: tarfile's searches cost about that many
# steps (a few nanoseconds each), so this keeps one header's parse under a tenth of a second, while a
# legitimate header (numbers of at most 20 digits) stays far below it.
_PAX_DIGIT_WORK = 1 << 24
# A pax record's length field: a 64-bit size needs at most 20 digits.
_MAX_LENGTH_DIGITS = 20


class LayerStream:
    """A forward-only file object over a layer's decompressed tar bytes, for `tarfile` to read from.

    Every byte pulled from `read` is charged to the layer and image totals of `budget`. Between
    `begin_member` and `end_member` (while `tarfile` reads a member's headers) reads past
    `max_header_bytes` from the member's first header raise `LimitExceededError` before any is read.
    """

    def __init__(self, read: Callable[[int], bytes], digest: str, budget: Budget) -> None:
        self._read = read
        self.digest = digest
        self.budget = budget
        self.limits = budget.limits
        self._buffer = b""
        self._at = 0
        self.pos = 0
        self.decompressed = 0
        self.metadata = 0
        self.members = 0
        self._header_start: int | None = 0
        self._headers = 0

    # The file object interface tarfile uses.

    def readable(self) -> bool:
        """Always true."""
        return True

    def seekable(self) -> bool:
        """False: the stream only moves forward."""
        return False

    def tell(self) -> int:
        """The position in the tar stream."""
        return self.pos

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (fewer only at the end of the layer)."""
        if size < 0:
            raise tarfile.StreamError("a layer stream is not read to its end at once")
        self._guard(size)
        if size >= _CHUNK and self._at == len(self._buffer):
            # A large read with nothing buffered (a file's content): hand over what the source gives
            # instead of copying it through the buffer, which would hold it until the next read.
            data = self._pull(size)
        else:
            self._fill(size)
            data = self._buffer[self._at : self._at + size]
            self._at += len(data)
        self.pos += len(data)
        return data

    def seek(self, position: int, whence: int = 0) -> int:
        """Move forward to `position`, reading and dropping the bytes in between."""
        if whence != 0 or position < self.pos:
            raise tarfile.StreamError("a layer stream cannot seek backwards")
        if position > self.limits.max_layer_bytes:
            raise LimitExceededError(
                f"layer {self.digest}: a member's data ends past {self.limits.max_layer_bytes} bytes, "
                "the limit of a layer"
            )
        self._discard(position - self.pos)
        return self.pos

    def peek(self, size: int) -> bytes:
        """The next `size` bytes (fewer at the end), left to be read again."""
        self._guard(size)
        self._fill(size)
        return self._buffer[self._at : self._at + size]

    # Header accounting, driven by `iter_members` and `BoundedTarInfo`.

    def begin_member(self) -> None:
        """The headers of the next member start here."""
        self._header_start = self.pos
        self._headers = 0

    def end_member(self) -> None:
        """The member's headers are read: count their extension bytes for the layer."""
        if self._header_start is None:
            return
        self.metadata += max(self.pos - self._header_start - _BLOCK, 0)
        self._header_start = None
        if self.metadata > self.limits.max_layer_metadata_bytes:
            raise LimitExceededError(
                f"layer {self.digest}: its extension headers (pax, long names, sparse maps) take more "
                f"than {self.limits.max_layer_metadata_bytes} bytes"
            )

    def count_header(self) -> None:
        """One more header block in front of the current member."""
        self._headers += 1
        if self._headers > self.limits.max_member_headers + 1:
            raise LimitExceededError(
                f"layer {self.digest}: more than {self.limits.max_member_headers} extension headers "
                f"in front of the member at byte {self._header_start}"
            )

    def skip_header_data(self, size: int) -> None:
        """Drop `size` bytes of header data (counted against the member's header bytes) unread."""
        self._guard(size)
        self._discard(size)

    def _guard(self, size: int) -> None:
        start = self._header_start
        if start is not None and self.pos + size - start > self.limits.max_header_bytes:
            raise LimitExceededError(
                f"layer {self.digest}: the headers of the member at byte {start} take more than "
                f"{self.limits.max_header_bytes} bytes (pax records, long names or a sparse map)"
            )

    def _discard(self, size: int) -> None:
        while size > 0:
            data = self.read(min(size, _CHUNK))
            if not data:
                raise LayerFormatError(f"layer {self.digest}: the stream ends inside a member's data")
            size -= len(data)

    def _fill(self, size: int) -> None:
        """Make the buffer hold `size` unread bytes, or all that is left."""
        have = len(self._buffer) - self._at
        if have < size:
            self._buffer = self._buffer[self._at :] + self._pull(max(size - have, _CHUNK))
            self._at = 0

    def _pull(self, size: int) -> bytes:
        """Up to `size` bytes from the source (fewer only at its end), charged to the budget."""
        chunks: list[bytes] = []
        have = 0
        while have < size:
            data = self._read(size - have)
            if not data:
                break
            self.decompressed += len(data)
            self.budget.charge(len(data), self.decompressed, self.digest)
            chunks.append(data)
            have += len(data)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _stream(archive: tarfile.TarFile) -> LayerStream:
    return cast(LayerStream, archive.fileobj)


def check_pax_records(data: bytes, where: str) -> None:
    """Refuse pax header data that is not a sequence of well-formed `"%d %s=%s\\n"` records (trailing
    NULs allowed), or whose digit runs would make `tarfile`'s regular expressions take quadratic time."""
    if sum(len(run) ** 2 for run in _DIGITS.findall(data)) > _PAX_DIGIT_WORK:
        raise LayerFormatError(f"{where}: a pax header with digit runs too long to parse safely")
    records = data.rstrip(b"\0")
    pos = 0
    while pos < len(records):
        space = records.find(b" ", pos, pos + _MAX_LENGTH_DIGITS + 1)
        field = records[pos:space]
        if space <= pos or not field.isdigit():
            raise LayerFormatError(f"{where}: a pax record at byte {pos} has no valid length")
        end = pos + int(field)
        equals = records.find(b"=", space + 1, end)
        if end > len(records) or records[end - 1 : end] != b"\n" or equals <= space + 1:
            raise LayerFormatError(f"{where}: the pax record at byte {pos} is malformed")
        pos = end


def check_sparse(member: tarfile.TarInfo, stored: int, where: str) -> None:
    """Refuse a sparse map whose regions overlap, go backwards, end past the file's size or hold more
    than the `stored` bytes that follow the member's headers."""
    sparse = cast(list[tuple[int, int]] | None, member.sparse)
    if sparse is None:
        return
    end = total = 0
    for offset, numbytes in sparse:
        if numbytes == 0:
            continue  # unused slots of old GNU headers
        if offset < end or numbytes < 0 or offset + numbytes > member.size:
            raise LayerFormatError(f"{where}: sparse region ({offset}, {numbytes}) is out of order or bounds")
        end = offset + numbytes
        total += numbytes
    if total > stored:
        raise LayerFormatError(f"{where}: sparse map holds {total} bytes but only {stored} are stored")


class BoundedTarInfo(tarfile.TarInfo):
    """A `TarInfo` whose extension headers are bounded and checked as `tarfile` reads them (see the
    module's docstring); it must read from a `LayerStream`."""

    @classmethod
    def fromtarfile(cls, tarfile: tarfile.TarFile) -> BoundedTarInfo:
        """Count the header block, then read it as `tarfile` does."""
        _stream(tarfile).count_header()
        return super().fromtarfile(tarfile)

    # `_proc_member` is tarfile's documented hook for subclasses to process member types.
    def _proc_member(self, archive: tarfile.TarFile) -> Any:
        stream = _stream(archive)
        where = f"layer {stream.digest}"
        if self.type in _EXTENSIONS and self.size > stream.limits.max_header_bytes:
            raise LimitExceededError(
                f"{where}: extended header of {self.size} bytes (limit {stream.limits.max_header_bytes})"
            )
        if self.type == tarfile.XGLTYPE:
            stream.skip_header_data(self._block(self.size))  # type: ignore[attr-defined]
            return self.fromtarfile(archive)
        if self.type in _PAX:
            check_pax_records(stream.peek(self._block(self.size))[: self.size], where)  # type: ignore[attr-defined]
        return super()._proc_member(archive)  # type: ignore[misc]


def _check_member(member: tarfile.TarInfo, archive: tarfile.TarFile, stream: LayerStream) -> None:
    where = f"layer {stream.digest}"
    if member.size < 0:
        raise LayerFormatError(f"{where}: member {member.name!r} has a negative size")
    limit = stream.limits.max_name_bytes
    for what, value in (("name", member.name), ("link name", member.linkname)):
        if len(value.encode("utf-8", "surrogateescape")) > limit:
            raise LimitExceededError(f"{where}: a member's {what} is longer than {limit} bytes")
    check_sparse(member, archive.offset - member.offset_data, f"{where}: {member.name}")


def iter_members(stream: LayerStream) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Each member of the tar stream with the archive to extract its data from, in order.

    A member's data may be read (`archive.extractfile`) until the next member is asked for. Raises
    `tarfile.TarError`, `ValueError` or `OverflowError` on malformed headers (tarfile's own), and a
    `ScanError` subclass on what the checks above refuse.
    """
    archive = tarfile.TarFile(fileobj=cast(Any, stream), mode="r", tarinfo=BoundedTarInfo)
    with archive:
        while (member := archive.next()) is not None:
            stream.end_member()
            # tarfile remembers every member it returns; memory must not follow the member count.
            archive.members.clear()  # type: ignore[attr-defined]  # (typeshed omits it)
            stream.members += 1
            stream.budget.member(stream.members, stream.digest)
            _check_member(member, archive, stream)
            yield archive, member
            stream.seek(archive.offset)
            stream.begin_member()
