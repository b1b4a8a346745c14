"""Egresses left without their handler: one whose handler died (a crash, or a kill after the ending
timeout) and those a previous run of the service left active. What their files hold is the truth: each is
read back from the disk and gets local manifests (a live handler writes and uploads its own,
:mod:`pyegress.handler.manifests`) before it ends EGRESS_FAILED."""

from __future__ import annotations

import logging
import time

from livekit.protocol import egress as eg

from ..contract.egress_info import CODE_FAILED, end_details, set_failed
from ..contract.events import END_FAILURE
from ..contract.job import FileTarget, SegmentsTarget
from ..handler.disk_results import file_results_from_disk
from ..handler.manifests import write_manifests
from .egress_job import EgressJob, request_webhooks
from .job_record import JobRecord

log = logging.getLogger(__name__)
#: EgressInfo.error of egresses a previous run of the service left without their handler
MSG_SERVICE_RESTARTED = "pyegress restarted while the egress was running"


def read_back(info: eg.EgressInfo, files: list[FileTarget], segments: list[SegmentsTarget]) -> None:
    """Results from the files on disk, then their manifests, local only; one that cannot be written is
    logged and left out (``manifest_location`` stays empty): the egress's end stands. Blocks."""
    file_results_from_disk(info)
    try:
        write_manifests(info, files, segments, upload=False)
    except OSError as e:
        log.error("egress %s: cannot write its manifest: %s", info.egress_id, e)


def end_left_behind(info: eg.EgressInfo, record: JobRecord) -> EgressJob:
    """End ``info``, an egress a previous run left active (``record``: what that run kept of it), with
    :data:`MSG_SERVICE_RESTARTED`; returns its record for the save that announces the end (its start was
    announced by the previous run). Blocks while it reads files."""
    job = EgressJob(info, external=record.external, webhook_urls=request_webhooks(info), announced=info.status)
    info.details = end_details(END_FAILURE)
    set_failed(info, MSG_SERVICE_RESTARTED, CODE_FAILED, time.time_ns())
    read_back(info, record.files, record.segments)
    return job
