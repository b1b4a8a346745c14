"""Uploads of one egress while it records: an ordered background queue, and MP4 streamed as it grows.

Rules (LiveKit egress's, with pyegress's retries): every upload is retried
(``attempts``, waits ``base_delay_s`` doubling); one that fails for good goes
to the ``backup`` destination if there is one, else the file stays in the
local recordings directory; either way ``backup_used`` becomes True. A local
file is deleted only once its object is confirmed. :class:`UploadStats` adds up
what went where, for the service's metrics (docs/metrics.md).
"""

from __future__ import annotations

import logging
import queue
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import obstore

from ..contract.events import UploadTotals
from .base import ObjectStorage, Storage
from .local import open_existing

log = logging.getLogger(__name__)


def storage_kind(storage: Storage) -> str:
    """The kind of a destination (``s3``, ``gcs``, ``azure``, ``sftp``), as its ``kind`` field names it."""
    return getattr(storage, "kind", "") or type(storage).__name__.lower()


class UploadStats:
    """One egress's upload totals by destination kind (:class:`~pyegress.contract.events.UploadTotals`).
    The upload and streaming threads add to them, the recording reads them: access is locked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, UploadTotals] = {}

    def add(self, storage: Storage, *, bytes: int = 0, retries: int = 0, failures: int = 0,
            backup_writes: int = 0) -> None:
        """Add to the totals of ``storage``'s kind: ``bytes`` sent, ``retries``, ``failures`` (files whose
        upload failed for good), ``backup_writes`` (files it took as the backup destination)."""
        kind = storage_kind(storage)
        with self._lock:
            t = self._totals.setdefault(kind, UploadTotals(storage=kind))
            t.bytes += bytes
            t.retries += retries
            t.failures += failures
            t.backup_writes += backup_writes

    def totals(self) -> list[UploadTotals]:
        """A copy of the totals, one per destination kind used so far."""
        with self._lock:
            return [t.model_copy() for t in self._totals.values()]


@dataclass
class _Job:
    storage: Storage
    path: Path
    key: str
    delete: bool


class UploadQueue:
    """Uploads files one after another on a thread of its own, in the order submitted.

    ``attempts`` / ``base_delay_s`` / ``max_delay_s``: retries per upload (see :meth:`Storage.upload`);
    ``backup``: where a file goes when its own destination fails for good (None: it stays local).
    After such a failure the destination counts as down and later files get one try each (so a dead
    server cannot hold the queue for minutes per file), until one succeeds again. What went where is
    added to ``stats`` (a new :class:`UploadStats` if None).
    """

    def __init__(self, attempts: int, base_delay_s: float, backup: Storage | None = None,
                 max_delay_s: float = 0.0, stats: UploadStats | None = None) -> None:
        self.attempts, self.base_delay_s, self.backup = attempts, base_delay_s, backup
        self.max_delay_s = max_delay_s
        self.stats = stats if stats is not None else UploadStats()
        self.backup_used = False
        self.locations: dict[tuple[int, str], str] = {}  # (id(storage), key) -> where the file ended up
        self._down: set[int] = set()
        self._refresh_pending: set[tuple[int, str]] = set()
        self._lock = threading.Lock()
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="uploads", daemon=True)
        self._thread.start()

    def submit(self, storage: Storage, path: Path, key: str, *, delete: bool = True) -> None:
        """Queue ``path`` for upload as ``key``. ``delete=False`` marks a file that is rewritten (a
        playlist): it stays local, and a copy already waiting in the queue is not queued twice."""
        if not delete:
            with self._lock:
                if (id(storage), key) in self._refresh_pending:
                    return
                self._refresh_pending.add((id(storage), key))
        self._jobs.put(_Job(storage, Path(path), key, delete))

    def location(self, storage: Storage, key: str) -> str:
        """Where ``key`` ended up: the object's location, a backup's, or the local path; before its upload
        finished, the location it will have."""
        return self.locations.get((id(storage), key)) or storage.location(key)

    def drain(self) -> None:
        """Wait for every queued upload to finish; the queue takes nothing afterwards."""
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if not job.delete:
                with self._lock:
                    self._refresh_pending.discard((id(job.storage), job.key))
            try:
                self.locations[(id(job.storage), job.key)] = self._upload(job)
            except Exception:  # a bug here must not stop the uploads after it
                log.exception("upload of %s failed", job.path)

    def _upload(self, job: _Job) -> str:
        if not job.path.exists():  # replaced and already uploaded by a later job (overwritten images)
            return job.storage.location(job.key)
        down = id(job.storage) in self._down
        size = job.path.stat().st_size
        try:
            location = job.storage.upload(job.path, job.key, attempts=1 if down else self.attempts,
                                         base_delay_s=self.base_delay_s, max_delay_s=self.max_delay_s,
                                         on_retry=lambda: self.stats.add(job.storage, retries=1))
            self._down.discard(id(job.storage))
            self.stats.add(job.storage, bytes=size)
        except Exception as e:  # the destination stayed down: backup, else keep it here
            self._down.add(id(job.storage))
            self.backup_used = True
            self.stats.add(job.storage, failures=1)
            location = self._fallback(job, e, size)
            if location is None:
                return str(job.path.resolve())
        if job.delete:
            job.path.unlink(missing_ok=True)
        return location

    def _fallback(self, job: _Job, error: Exception, size: int) -> str | None:
        backup = self.backup
        if backup is not None:
            try:
                location = backup.upload(job.path, job.key, attempts=self.attempts, base_delay_s=self.base_delay_s,
                                         max_delay_s=self.max_delay_s,
                                         on_retry=lambda: self.stats.add(backup, retries=1))
                self.stats.add(backup, bytes=size, backup_writes=1)
                log.error("upload of %s to %s failed for good (%s); stored in backup storage %s",
                          job.key, job.storage.describe(), error, self.backup.describe())
                return location
            except Exception as e:  # the backup is down too
                error = e
        log.error("upload of %s to %s failed for good, kept at %s: %s", job.key, job.storage.describe(), job.path,
                  error)
        return None


class StreamedUpload:
    """Streams a local file that is being appended to (fragmented MP4) into a multipart object.

    A thread reads what the muxer has flushed every ``poll_s`` s and writes it to the destination's
    writer (``buffer_size``-byte parts). :meth:`finish`, called once the file is closed, sends the
    rest and completes the object, so little is left to upload at the end. The local file stays the
    truth: if streaming fails, or the file changed behind what was streamed (CRC-32 of the streamed
    bytes against the final file), :meth:`finish` returns False and the caller uploads it whole.
    The bytes handed to the writer are added to ``stats``.
    """

    def __init__(self, storage: ObjectStorage, path: Path, key: str, *, poll_s: float = 1.0,
                 buffer_size: int = 10 * 1024 * 1024, stats: UploadStats | None = None) -> None:
        self.storage, self.path, self.key = storage, Path(path), key
        self.poll_s = poll_s
        self.stats = stats if stats is not None else UploadStats()
        self._writer = storage.open_writer(key, buffer_size=buffer_size)
        self._sent = 0
        self._crc = 0
        self.error: Exception | None = None
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stream {key}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        with open_existing(self.path) as f:
            f.seek(self._sent)
            while chunk := f.read(1024 * 1024):
                self._writer.write(chunk)
                self._sent += len(chunk)
                self._crc = zlib.crc32(chunk, self._crc)
                self.stats.add(self.storage, bytes=len(chunk))

    def _run(self) -> None:
        while not self._closing.wait(self.poll_s):
            try:
                self._pump()
            except Exception as e:  # the destination went away: stop streaming, the file is kept
                log.warning("streaming %s to %s stopped (%s); it will be uploaded whole at the end",
                            self.key, self.storage.describe(), e)
                self.error = e
                return

    def finish(self) -> bool:
        """Send the rest and complete the object; returns whether the object now equals the local file."""
        self._closing.set()
        self._thread.join()
        if self.error is not None:
            return False
        try:
            self._pump()
            self._writer.close()
        except Exception as e:  # completing failed: the whole-file upload takes over
            log.warning("completing the streamed upload of %s failed: %s", self.key, e)
            return False
        crc, size = 0, 0
        with open_existing(self.path) as f:
            while chunk := f.read(4 * 1024 * 1024):
                crc, size = zlib.crc32(chunk, crc), size + len(chunk)
        if (crc, size) != (self._crc, self._sent):
            log.warning("%s changed after it was streamed; uploading it whole", self.key)
            return False
        try:
            head = obstore.head(self.storage.store(), self.storage.key(self.key))
        except Exception as e:  # cannot confirm: the file is not deleted, it is uploaded whole
            log.warning("cannot confirm the streamed object %s: %s", self.key, e)
            return False
        return head["size"] == size

