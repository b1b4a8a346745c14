"""What a start brings besides its request (:class:`StartOptions`) and the :class:`~pyegress.contract.job.JobSpec`
built from both with the service's settings: URL, recorder token, limits, upload policy."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..contract.job import JobSpec
from ..errors import invalid
from ..ids import new_egress_id
from ..storage import AnyStorage
from .rooms import recorder_token

_EGRESS_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class StartOptions:
    """What a start request may bring from outside the Egress API (livekit-server's
    ``rpc.StartEgressRequest``): the ``egress_id`` it assigned, the room's SID, and a
    recorder ``token``/``ws_url`` to use instead of minting one. Empty fields: pyegress decides."""

    egress_id: str = ""
    room_id: str = ""
    token: str = ""
    ws_url: str = ""
    webhooks: bool = True  # False when livekit-server announces the egress itself (it gets IOInfo reports)
    # where outputs without an upload of their own go, instead of the config's default storage: for
    # destinations a LiveKit request cannot name (RealtimeKit's SFTP storage_config)
    upload: AnyStorage | None = None

    def chosen_egress_id(self) -> str:
        """The ``egress_id`` given, else a new one.

        Raises:
            EgressError: ``invalid_argument`` for a given ID that could not name a file (it names the
                egress's log), such as ``../x``: LiveKit's IDs are ``EG_`` and letters and digits.
        """
        if not self.egress_id:
            return new_egress_id()
        if not _EGRESS_ID.fullmatch(self.egress_id):
            raise invalid("egress_id", f"{self.egress_id[:80]!r} is not an egress ID (letters, digits, _ and -)")
        return self.egress_id


NO_OPTIONS = StartOptions()


def new_spec(settings: Settings, backup: AnyStorage | None, egress_id: str, room_name: str, opts: StartOptions,
             **fields) -> JobSpec:
    """A JobSpec with the service-wide parts filled in (URL, recorder token, limits, uploads) and ``fields``;
    ``max_duration_s`` becomes the smallest of the configured limits that apply to its outputs and
    ``max_size_bytes`` the configured ``file_output_max_size`` (whatever its outputs, as LiveKit); an egress
    with a picture gets its ``preview_path`` in ``Settings.preview_dir``."""
    defaults = dict(empty_timeout_s=settings.empty_timeout_s, progress_interval_s=settings.progress_interval_s,
                    max_duration_s=settings.max_duration_s, upload_attempts=settings.upload_attempts,
                    upload_retry_base_s=settings.upload_retry_base_s, upload_retry_max_s=settings.upload_retry_max_s,
                    backup=backup, stream_uploads=settings.stream_uploads, receiver=settings.composite_receiver)
    spec = JobSpec(egress_id=egress_id, ws_url=opts.ws_url or settings.ws_url, room_name=room_name,
                   token=opts.token or (recorder_token(settings, egress_id, room_name) if room_name else ""),
                   **(defaults | fields))  # a web egress without a room has no token
    limits = settings.session_limits
    caps = [spec.max_duration_s,
            limits.file_output_max_duration if spec.files else 0, limits.image_output_max_duration if spec.images
            else 0, limits.segment_output_max_duration if spec.segments else 0,
            limits.stream_output_max_duration if spec.streams else 0]
    spec.max_duration_s = min((c for c in caps if c > 0), default=0.0)
    spec.max_size_bytes = limits.file_output_max_size
    if spec.video and not spec.passthrough:  # a picture the worker composes or renders can be previewed
        spec.preview_path = str(Path(settings.preview_dir).resolve() / f"{egress_id}.jpg")
    return spec
