"""The job record: what the service keeps of an egress beside its EgressInfo, in the egress table, so a
service restarted after a crash can still finish its bookkeeping (read back the files, write their
manifests, announce the end). It never holds a credential: targets are kept without their upload."""

from __future__ import annotations

from pydantic import BaseModel

from ..contract.job import FileTarget, JobSpec, SegmentsTarget


class JobRecord(BaseModel):
    """``files`` / ``segments``: the egress's output targets, ``upload`` left out; ``legacy``: the
    legacy result oneof its request used; ``external``: livekit-server announces it (psrpc job)."""

    files: list[FileTarget] = []
    segments: list[SegmentsTarget] = []
    legacy: str = ""
    external: bool = False

    @classmethod
    def of(cls, spec: JobSpec, legacy: str, external: bool) -> "JobRecord":
        """The record of ``spec``, its outputs' credentials dropped."""
        return cls(files=[t.model_copy(update={"upload": None}) for t in spec.files],
                   segments=[t.model_copy(update={"upload": None}) for t in spec.segments],
                   legacy=legacy, external=external)

    def dump(self) -> str:
        return self.model_dump_json(exclude_defaults=True)

    @classmethod
    def load(cls, text: str | None) -> "JobRecord":
        """The record saved as ``text``; an egress saved before records existed has an empty one."""
        return cls.model_validate_json(text) if text else cls()
