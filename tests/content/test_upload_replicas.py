"""Upload sessions across replicas: the running hash travels with the session in the database (no
re-reading of received bytes), and one writer per session is enforced by a lease on its row."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from dockyard.app import Services, build_services
from dockyard.config import Settings, load_settings
from dockyard.content import uploads as uploads_module
from dockyard.content.digests import parse_digest
from dockyard.content.errors import BlobUploadInvalid
from dockyard.content.uploads import UploadStatus
from dockyard.db.schema import uploads
from dockyard.storage.blobstore import BlobStore
from dockyard.storage.filesystem import FilesystemDriver, FileWriter
from support.servers import environment_without

NAME = "cluster/repo"
CHUNKS = [b"a" * 70_000, bytes(range(256)) * 300, b"tail" * 1000]
DATA = b"".join(CHUNKS)
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


class CountingDriver(FilesystemDriver):
    """The filesystem driver, counting reads of upload data and taking no file locks (as on NFS, where
    they cannot be trusted): only the database keeps writers apart."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.upload_reads = 0

    def read(
        self, path: str, offset: int = 0, chunk_size: int = 1 << 20, length: int | None = None
    ) -> Iterator[bytes]:
        """Count, then read."""
        if path.startswith("uploads/"):
            self.upload_reads += 1
        return super().read(path, offset, chunk_size, length)

    def writer(
        self, path: str, resume_at: int = 0, state: bytes | None = None, exclusive: bool = False
    ) -> FileWriter:
        """No flock."""
        return super().writer(path, resume_at=resume_at, state=state, exclusive=False)


@pytest.fixture
def replicas(settings: Settings, tmp_path: Path) -> Iterator[list[Services]]:
    """Three replicas: each its own process-level services and data directory, sharing the database and
    the blob directory."""
    built = []
    shared = tmp_path / "shared-storage"
    for index in range(3):
        mine = load_settings(
            data_dir=tmp_path / f"replica{index}",
            replica_id=f"node{index}",
            database_url=settings.effective_database_url,
            storage={"filesystem": {"path": shared}},
        )
        services = build_services(mine)
        services.uploads.store = BlobStore(CountingDriver(shared))
        built.append(services)
    try:
        yield built
    finally:
        for services in built:
            services.db.close()


def _begin(services: Services) -> UploadStatus:
    """A session holding the first chunk."""
    status = services.uploads.start(NAME)
    first = services.uploads.append(NAME, status.id, 0)
    first.write(CHUNKS[0])
    first.finish()
    return status


def _reads(services: Services) -> int:
    driver = services.uploads.store.driver
    assert isinstance(driver, CountingDriver)
    return driver.upload_reads


def test_an_upload_begun_on_a_continued_on_b_finished_on_c_reads_nothing_back(
    replicas: list[Services],
) -> None:
    a, b, c = replicas
    status = a.uploads.start(NAME)
    first = a.uploads.append(NAME, status.id, 0)
    first.write(CHUNKS[0])
    assert first.finish() == len(CHUNKS[0])
    second = b.uploads.append(NAME, status.id, len(CHUNKS[0]))
    second.write(CHUNKS[1])
    second.finish()
    last = c.uploads.append(NAME, status.id, len(CHUNKS[0]) + len(CHUNKS[1]))
    last.write(CHUNKS[2])
    assert last.complete(parse_digest(DIGEST)) == len(DATA)
    assert [_reads(r) for r in replicas] == [0, 0, 0]
    assert b"".join(a.store.read(DIGEST)) == DATA


@pytest.mark.parametrize(
    "state",
    [None, b"hashlib-pickle:whatever", b"truncated"],
    ids=["absent", "other-format", "garbage"],
)
def test_a_missing_or_foreign_hash_state_is_rebuilt_from_storage(
    replicas: list[Services], state: bytes | None
) -> None:
    a, b, _ = replicas
    status = _begin(a)
    with a.db.write() as conn:
        conn.execute(update(uploads).where(uploads.c.id == status.id).values(hash_state=state))
    second = b.uploads.append(NAME, status.id, len(CHUNKS[0]))
    second.write(CHUNKS[1] + CHUNKS[2])
    assert second.complete(parse_digest(DIGEST)) == len(DATA)
    assert _reads(b) == 1


def test_a_state_that_does_not_match_the_size_is_not_trusted(replicas: list[Services]) -> None:
    a, b, _ = replicas
    status = _begin(a)
    with a.db.read() as conn:
        stale = conn.execute(uploads.select().where(uploads.c.id == status.id)).one().hash_state
    second = a.uploads.append(NAME, status.id, len(CHUNKS[0]))
    second.write(CHUNKS[1])
    second.finish()
    # The state of an earlier size, as a lost update could leave it: re-hashed instead.
    with a.db.write() as conn:
        conn.execute(update(uploads).where(uploads.c.id == status.id).values(hash_state=stale))
    b.uploads.complete(
        NAME, status.id, parse_digest("sha256:" + hashlib.sha256(DATA[: -len(CHUNKS[2])]).hexdigest())
    )
    assert _reads(b) == 1


def test_one_writer_per_upload_across_replicas(replicas: list[Services]) -> None:
    a, b, _ = replicas
    status = a.uploads.start(NAME)
    first = a.uploads.append(NAME, status.id, 0)
    first.write(CHUNKS[0])
    # No file lock here: the lease on the session's row refuses the second writer, as flock did.
    with pytest.raises(BlobUploadInvalid, match="another request is writing"):
        b.uploads.append(NAME, status.id, 0)
    with pytest.raises(BlobUploadInvalid, match="another request is writing"):
        b.uploads.complete(NAME, status.id, parse_digest(DIGEST))
    assert first.finish() == len(CHUNKS[0])
    more = b.uploads.append(NAME, status.id, len(CHUNKS[0]))  # free again once the first is done
    more.write(CHUNKS[1])
    more.abort()  # a client gone away: the lease is let go in the background
    again = a.uploads.append(NAME, status.id, len(CHUNKS[0]))
    again.write(CHUNKS[1] + CHUNKS[2])
    assert again.complete(parse_digest(DIGEST)) == len(DATA)


def test_a_dead_writers_lease_expires(replicas: list[Services], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, _ = replicas
    status = a.uploads.start(NAME)
    dead = a.uploads.append(NAME, status.id, 0)
    dead.write(b"x" * 100)  # ...and its replica dies here, never finishing nor letting go
    with pytest.raises(BlobUploadInvalid):
        b.uploads.append(NAME, status.id, 0)
    later = uploads_module.time.time() + uploads_module.WRITER_LEASE_SECONDS + 1
    monkeypatch.setattr(uploads_module.time, "time", lambda: later)
    taken = b.uploads.append(NAME, status.id, 0)
    taken.write(DATA)
    # Were the dead writer to wake up, it could neither renew nor record its bytes.
    with pytest.raises(BlobUploadInvalid):
        a.uploads.renew_writer(status.id, dead._lease)
    with pytest.raises(BlobUploadInvalid):
        dead.finish()
    assert taken.complete(parse_digest(DIGEST)) == len(DATA)


def test_a_restarted_replica_frees_the_sessions_it_was_writing(replicas: list[Services]) -> None:
    a, b, c = replicas
    cut = a.uploads.start(NAME)
    a.uploads.append(NAME, cut.id, 0).write(b"x" * 100)  # a is killed while this request streams
    busy = b.uploads.start(NAME)
    b.uploads.append(NAME, busy.id, 0).write(b"y" * 100)  # b is alive and writing
    # a starts again (`dockyard serve` does this before its workers start).
    assert a.uploads.recover_writers() == 1
    resumed = c.uploads.append(NAME, cut.id, 0)  # at once, not after the lease
    resumed.write(DATA)
    assert resumed.complete(parse_digest(DIGEST)) == len(DATA)
    with pytest.raises(BlobUploadInvalid, match="another request is writing"):
        c.uploads.append(NAME, busy.id, 0)


_STEP = """
import json, sys
from pathlib import Path
from dockyard.app import build_services
from dockyard.config import load_settings
from dockyard.content.digests import parse_digest
from dockyard.storage.filesystem import FilesystemDriver

data_dir, url, storage, step, upload_id, start, digest = sys.argv[1:8]
chunk = sys.stdin.buffer.read()
reads = []
original = FilesystemDriver.read
def counting(self, path, offset=0, chunk_size=1 << 20, length=None):
    if path.startswith("uploads/"):
        reads.append(path)
    return original(self, path, offset, chunk_size, length)
FilesystemDriver.read = counting
settings = load_settings(data_dir=Path(data_dir), database_url=url, storage={"filesystem": {"path": storage}})
services = build_services(settings)
if step == "start":
    upload_id = services.uploads.start("cluster/repo").id
appender = services.uploads.append("cluster/repo", upload_id, int(start))
appender.write(chunk)
size = appender.complete(parse_digest(digest)) if step == "finish" else appender.finish()
services.db.close()
print(json.dumps({"id": upload_id, "size": size, "reads": len(reads)}))
"""


def test_three_processes_share_one_upload(settings: Settings, tmp_path: Path) -> None:
    url, storage = settings.effective_database_url, tmp_path / "shared-storage"
    upload_id, start = "-", 0
    for index, (step, chunk) in enumerate(zip(["start", "append", "finish"], CHUNKS, strict=True)):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _STEP,
                str(tmp_path / f"p{index}"),
                url,
                str(storage),
                step,
                upload_id,
                str(start),
                DIGEST,
            ],
            input=chunk,
            capture_output=True,
            timeout=120,
            env=environment_without("DOCKYARD_"),
        )
        assert done.returncode == 0, done.stderr[-2000:].decode()
        result = json.loads(done.stdout.strip().splitlines()[-1])
        upload_id, start = result["id"], result["size"]
        assert result["reads"] == 0, step
    assert start == len(DATA)
    assert b"".join(BlobStore(FilesystemDriver(storage)).read(DIGEST)) == DATA
