"""Cloudflare RealtimeKit's recordings resource as a dialect service (docs/realtimekit.md): the request
bodies (:mod:`.models`), where files go (:mod:`.storage`), which egresses a recording starts
(:mod:`.planning`), how its status follows them (:mod:`.recording`) and the service that does it
(:mod:`.service`)."""

from .models import Action, CompositeStart, StorageConfig, TrackStart
from .planning import composite_requests
from .service import DOWNLOAD_TTL_S, JOIN_POLL_S, RealtimeKitRecordings
from .storage import storage_target

__all__ = ["Action", "CompositeStart", "DOWNLOAD_TTL_S", "JOIN_POLL_S", "RealtimeKitRecordings", "StorageConfig",
           "TrackStart", "composite_requests", "storage_target"]
