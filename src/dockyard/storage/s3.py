"""The S3-compatible storage driver (boto3): objects in a bucket, under an optional key prefix.

An object being written is an S3 multipart upload that any replica can continue. Bytes are sent in parts
of `part_size`; what is left over at the end of a request (less than a part: S3 refuses parts under
5 MiB but the last) is kept as a "tail" object of its own, read back by the next writer. The writer's
`state` (multipart upload id, the parts' numbers, ETags and sizes, the tail's key) is kept by the caller
with the upload's size, so the next writer resumes exactly there: parts a failed writer sent past it are
replaced (same numbers) and its tails are deleted. Memory stays at most one part per writer.

`commit` completes the multipart upload (S3 checks every part's ETag, so a part replaced by a writer that
lost its lease fails it) or, for an object smaller than a part, puts it whole. Readers see nothing under
the key before that. `move` is CopyObject (UploadPartCopy above 5 GiB, by boto3's managed copy) and a
delete: the destination appears whole. Incomplete multipart uploads cost storage until aborted: `delete`
aborts those under the path, and a bucket lifecycle rule should abort forgotten ones (docs).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from dockyard.storage.driver import FileInfo, PathNotFound, StorageError, StorageFull

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

MIN_PART_SIZE = 5 << 20
MAX_PART_SIZE = 5 << 30
MAX_PARTS = 10_000
# Copies up to S3's CopyObject limit are one request; larger ones go part by part.
_COPY = TransferConfig(multipart_threshold=MAX_PART_SIZE, multipart_chunksize=512 << 20)
# A multipart upload completed or aborted meanwhile, or a part replaced (InvalidPart) is gone for good too.
_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchUpload", "InvalidPart"}
# What S3-compatible servers answer when space or quota runs out (S3 itself has no such limit).
_FULL = {"QuotaExceeded", "XMinioStorageFull"}
_TAILS = ".tails"


@dataclass(frozen=True)
class S3Options:
    """Where the bucket is and how to use it (from the [storage.s3] settings)."""

    bucket: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    prefix: str = ""
    access_key: str | None = None
    secret_key: str | None = None
    part_size: int = 16 << 20
    # Seconds a presigned blob URL lives; None answers blob GETs from the registry itself.
    redirect_seconds: int | None = None


def _failure(doing: str, exc: Exception) -> StorageError:
    """The driver's error for a failed S3 call; never carries credentials (botocore's messages hold none)."""
    if isinstance(exc, ClientError):
        error: Any = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _NOT_FOUND:
            return PathNotFound(doing)
        if code in _FULL or status == 507:
            return StorageFull(f"cannot {doing}: no space left for blob storage ({code or status})")
        return StorageError(f"cannot {doing}: S3 answered {code or status}: {error.get('Message', '')}")
    return StorageError(f"cannot {doing}: {exc}")


@contextlib.contextmanager
def _calling(doing: str) -> Iterator[None]:
    """Turn boto3's exceptions into the driver's."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise _failure(doing, exc) from exc


@dataclass(frozen=True)
class _Progress:
    """What a writer hands the next one: the multipart upload so far and the tail after it."""

    upload_id: str | None = None
    parts: tuple[tuple[int, str, int], ...] = ()
    tail: str | None = None
    tail_size: int = 0

    @property
    def size(self) -> int:
        return sum(size for _, _, size in self.parts) + self.tail_size

    def dump(self) -> bytes:
        return json.dumps(
            {
                "v": 1,
                "upload": self.upload_id,
                "parts": self.parts,
                "tail": self.tail,
                "tail_size": self.tail_size,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def load(cls, raw: bytes) -> _Progress:
        try:
            data = json.loads(raw)
            return cls(
                upload_id=data["upload"],
                parts=tuple((int(n), str(etag), int(size)) for n, etag, size in data["parts"]),
                tail=data["tail"],
                tail_size=int(data["tail_size"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError("the upload's storage state is unreadable; restart the upload") from exc


class S3Writer:
    """Appends to one object through a multipart upload; see the module docstring."""

    def __init__(self, driver: S3Driver, key: str, resume_at: int, state: bytes | None) -> None:
        self._driver = driver
        self._client = driver.client
        self._key = key
        progress = _Progress.load(state) if state is not None else _Progress()
        if progress.size != resume_at:
            raise StorageError(
                f"cannot continue {key}: its storage state holds {progress.size} bytes, not {resume_at}"
            )
        if progress.tail is not None and not progress.tail.startswith(f"{key}/{_TAILS}/"):
            raise StorageError(f"cannot continue {key}: its storage state names another object")
        self._upload_id = progress.upload_id
        self._parts = list(progress.parts)
        self._sent = sum(size for _, _, size in progress.parts)
        self._buffer = bytearray()
        self._tail = progress.tail
        self._dirty = False
        if progress.tail is not None:
            self._buffer += b"".join(driver.read_key(progress.tail, length=progress.tail_size))
            if len(self._buffer) != progress.tail_size:
                raise StorageError(f"cannot continue {key}: its last bytes are missing")
        if resume_at:
            # Tails of earlier writers are garbage now: the one recorded with resume_at is the only live one.
            driver.delete_prefix(f"{key}/{_TAILS}/", keep=progress.tail)
        self._progress = progress

    @property
    def size(self) -> int:
        """Bytes in the parts sent plus the buffer."""
        return self._sent + len(self._buffer)

    @property
    def state(self) -> bytes:
        """The progress as of the last flush (or as opened)."""
        return self._progress.dump()

    def write(self, data: bytes) -> None:
        """Buffer, sending every full part."""
        self._dirty = True
        self._buffer += data
        part_size = self._driver.options.part_size
        while len(self._buffer) >= part_size:
            self._send_part(bytes(memoryview(self._buffer)[:part_size]))
            del self._buffer[:part_size]

    def _send_part(self, data: bytes) -> None:
        if len(self._parts) >= MAX_PARTS:
            raise StorageError(f"cannot write {self._key}: larger than {MAX_PARTS} parts of the part size")
        with _calling(f"write {self._key}"):
            if self._upload_id is None:
                self._upload_id = self._client.create_multipart_upload(
                    Bucket=self._driver.bucket, Key=self._key
                )["UploadId"]
            number = len(self._parts) + 1
            etag = self._client.upload_part(
                Bucket=self._driver.bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
            )["ETag"]
        self._parts.append((number, etag, len(data)))
        self._sent += len(data)

    def flush(self) -> None:
        """Save the bytes short of a part as a new tail object (a fresh key: the recorded one stays
        valid until the caller records this state)."""
        if self._dirty:
            self._tail = None
            if self._buffer:
                self._tail = f"{self._key}/{_TAILS}/{uuid.uuid4().hex}"
                with _calling(f"write {self._key}"):
                    self._client.put_object(
                        Bucket=self._driver.bucket, Key=self._tail, Body=bytes(self._buffer)
                    )
            self._dirty = False
        self._progress = _Progress(self._upload_id, tuple(self._parts), self._tail, len(self._buffer))

    def commit(self) -> None:
        """Complete the multipart upload with the buffer as its last part, or put a small object whole."""
        with _calling(f"commit {self._key}"):
            if self._upload_id is None:
                self._client.put_object(Bucket=self._driver.bucket, Key=self._key, Body=bytes(self._buffer))
            else:
                if self._buffer:
                    self._send_part(bytes(self._buffer))
                self._client.complete_multipart_upload(
                    Bucket=self._driver.bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={
                        "Parts": [{"PartNumber": n, "ETag": etag} for n, etag, _ in self._parts]
                    },
                )
        self._buffer.clear()

    def close(self) -> None:
        """Drop the buffer; the multipart upload and the recorded tail stay for the next writer."""
        self._buffer = bytearray()


class S3Driver:
    """Stores objects in an S3 bucket; see the module docstring."""

    def __init__(self, options: S3Options) -> None:
        if not MIN_PART_SIZE <= options.part_size <= MAX_PART_SIZE:
            raise ValueError("part_size must be from 5 MiB to 5 GiB")
        self.options = options
        self.bucket = options.bucket
        self._bucket_found = False
        self._root = f"{options.prefix.strip('/')}/" if options.prefix.strip("/") else ""
        config = Config(
            signature_version="s3v4",
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
            max_pool_connections=64,
            # Servers other than AWS (MinIO, Ceph, moto) are addressed by path, not by bucket host name.
            s3={"addressing_style": "path" if options.endpoint_url else "auto"},
        )
        self.client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=options.endpoint_url,
            region_name=options.region,
            aws_access_key_id=options.access_key,
            aws_secret_access_key=options.secret_key,
            config=config,
        )

    def _check_bucket(self) -> None:
        """StorageError unless the bucket exists (asked once: then a 404 can only mean a missing key)."""
        if self._bucket_found:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            raise StorageError(f"the bucket {self.bucket} does not exist or cannot be reached") from exc
        except BotoCoreError as exc:
            raise _failure(f"find the bucket {self.bucket}", exc) from exc
        self._bucket_found = True

    def _key(self, path: str) -> str:
        parts = [p for p in path.split("/") if p]
        if not parts or any(p in {".", ".."} for p in parts):
            raise StorageError(f"invalid storage path {path!r}")
        return self._root + "/".join(parts)

    def _path(self, key: str) -> str:
        return key[len(self._root) :]

    def stat(self, path: str) -> FileInfo:
        """HEAD the object."""
        key = self._key(path)
        try:
            with _calling(f"stat {path}"):
                head = self.client.head_object(Bucket=self.bucket, Key=key)
        except PathNotFound:
            # A HEAD's 404 has no body to tell a missing key from a missing bucket.
            self._check_bucket()
            raise
        return FileInfo(path=path, size=head["ContentLength"], modified=head["LastModified"].timestamp())

    def read(
        self, path: str, offset: int = 0, chunk_size: int = 1 << 20, length: int | None = None
    ) -> Iterator[bytes]:
        """GET the object (a byte range of it)."""
        return self.read_key(self._key(path), offset, chunk_size, length)

    def read_key(
        self, key: str, offset: int = 0, chunk_size: int = 1 << 20, length: int | None = None
    ) -> Iterator[bytes]:
        """GET by key; the request is made now, so a missing object raises here."""
        if length == 0:
            with _calling(f"read {self._path(key)}"):
                self.client.head_object(Bucket=self.bucket, Key=key)
            return iter(())
        end = "" if length is None else str(offset + length - 1)
        try:
            with _calling(f"read {self._path(key)}"):
                body = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={offset}-{end}")[
                    "Body"
                ]
        except StorageError as exc:
            cause = exc.__cause__
            if (
                isinstance(cause, ClientError)
                and cause.response.get("Error", {}).get("Code") == "InvalidRange"
            ):
                # At or past the end of an object that exists: nothing to send.
                return iter(())
            raise
        return self._chunks(body, key, chunk_size)

    def _chunks(self, body: Any, key: str, chunk_size: int) -> Iterator[bytes]:
        try:
            with _calling(f"read {self._path(key)}"):
                yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def local_file(self, path: str) -> Path | None:
        """Objects are not local files."""
        return None

    def redirect_url(self, path: str) -> str | None:
        """A presigned GET URL, when redirects are on (signed locally: no request)."""
        if self.options.redirect_seconds is None:
            return None
        with _calling(f"sign {path}"):
            return self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._key(path)},
                ExpiresIn=self.options.redirect_seconds,
            )

    def writer(
        self, path: str, resume_at: int = 0, state: bytes | None = None, exclusive: bool = False
    ) -> S3Writer:
        """Begin or continue the object; `exclusive` cannot be honoured (the caller's lease keeps writers
        apart)."""
        return S3Writer(self, self._key(path), resume_at, state)

    def move(self, source: str, destination: str) -> None:
        """Copy (dated now by S3), then delete the source."""
        src, dst = self._key(source), self._key(destination)
        with _calling(f"move {source}"):
            self.client.copy({"Bucket": self.bucket, "Key": src}, self.bucket, dst, Config=_COPY)
            self.client.delete_object(Bucket=self.bucket, Key=src)

    def delete(self, path: str) -> None:
        """Delete the object, everything under path/, and abort multipart uploads there."""
        key = self._key(path)
        with _calling(f"delete {path}"):
            self.client.delete_object(Bucket=self.bucket, Key=key)
        self.delete_prefix(f"{key}/")
        with _calling(f"delete {path}"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=key
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Key"] == key or upload["Key"].startswith(f"{key}/"):
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )

    def delete_prefix(self, prefix: str, keep: str | None = None) -> None:
        """Delete every object whose key starts with prefix, except `keep`, 1000 per request."""
        with _calling(f"delete {self._path(prefix)}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                doomed: list[ObjectIdentifierTypeDef] = [
                    {"Key": o["Key"]} for o in page.get("Contents", []) if o["Key"] != keep
                ]
                if doomed:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": doomed, "Quiet": True})

    def walk(self, prefix: str) -> Iterator[FileInfo]:
        """List the objects under prefix/, a page (1000) at a time."""
        key = self._key(prefix)
        with _calling(f"list {prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{key}/"
            ):
                for obj in page.get("Contents", []):
                    yield FileInfo(
                        path=self._path(obj["Key"]),
                        size=obj["Size"],
                        modified=obj["LastModified"].timestamp(),
                    )
