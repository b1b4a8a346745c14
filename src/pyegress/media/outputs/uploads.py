"""The uploads of one recording's outputs: what goes up while recording, and what is completed at the end.

The queue and the streamed upload themselves are :mod:`pyegress.storage.uploads`;
this is the order the pipeline needs them in: segments, playlists and images are
queued as they are written; MP4 files to object storage stream as they grow;
at the end every file goes up and each result's location becomes where its
object ended up.
"""

from __future__ import annotations

import logging

from ...contract.events import HandlerEvent
from ...contract.job import JobSpec
from ...storage.base import ObjectStorage
from ...storage.uploads import StreamedUpload, UploadQueue, UploadStats
from .file import FileOutput
from .segments import SegmentsOutput

log = logging.getLogger(__name__)


class OutputUploads:
    """The uploads of ``spec``'s outputs; :attr:`queue` is what segments and images submit to, :attr:`stats`
    what went where."""

    def __init__(self, spec: JobSpec) -> None:
        self.stats = UploadStats()
        self.queue = UploadQueue(spec.upload_attempts, spec.upload_retry_base_s, spec.backup, spec.upload_retry_max_s,
                                 stats=self.stats)
        self._streamed: dict[int, StreamedUpload] = {}  # index in files -> its upload while recording

    @classmethod
    def for_spec(cls, spec: JobSpec) -> "OutputUploads | None":
        """The uploads of ``spec``, or None if none of its files, segments or images goes anywhere."""
        return cls(spec) if any(t.upload for t in [*spec.files, *spec.segments, *spec.images]) else None

    @property
    def backup_used(self) -> bool:
        return self.queue.backup_used

    def stream(self, files: list[FileOutput]) -> None:
        """Stream MP4 files to object storage while they are recorded. Fragmented MP4 only grows, so it
        can go up as it is written; other containers rewrite their headers at the end and go up whole,
        as does a file whose stream cannot start (the recording goes on either way)."""
        for i, out in enumerate(files):
            target = out.target
            if target.format != "mp4" or not isinstance(target.upload, ObjectStorage):
                continue
            try:
                self._streamed[i] = StreamedUpload(target.upload, out.path, target.filename, stats=self.stats)
            except Exception as e:  # a destination obstore cannot even open: the upload at the end decides
                log.warning("cannot stream %s to %s: %s", target.filename, target.upload.describe(), e)

    def finish(self, files: list[FileOutput], segments: list[SegmentsOutput], event: HandlerEvent) -> None:
        """Complete the uploads once every output is closed (blocking: call on a thread): streamed MP4s
        are completed (or, if that failed, uploaded whole), other files uploaded, and the queue
        (segments, playlists, images) drained. Each result's location becomes where its object ended
        up; a local file is deleted only once its object is confirmed."""
        uploads = self.queue
        for i, (out, result) in enumerate(zip(files, event.files)):
            target = out.target
            if target.upload is None or not out.path.exists():
                continue
            streamed = self._streamed.get(i)
            if streamed is not None and streamed.finish():
                uploads.locations[(id(target.upload), target.filename)] = target.upload.location(target.filename)
                out.path.unlink()
            else:
                uploads.submit(target.upload, out.path, target.filename)
        uploads.drain()
        for out, result in zip(files, event.files):
            if out.target.upload is not None:
                result.path = uploads.location(out.target.upload, out.target.filename)
        event.segments = [s.result(event.ended_at) for s in segments]
        event.backup_storage_used = self.backup_used
        event.uploads = self.stats.totals()
