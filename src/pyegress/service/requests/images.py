"""Image outputs (``image_outputs``): JPEG thumbnails, ``media/outputs/images.py``."""

from __future__ import annotations

from livekit.protocol import egress as eg

from ...contract.job import ImagesTarget
from ...errors import invalid
from ...storage import AnyStorage
from .paths import DEFAULT_NAME, Resolver
from .storage import upload_target


def resolve_images(out, f: str, r: Resolver, *, storage: AnyStorage | None) -> ImagesTarget:
    """The target of the images output ``out`` (field ``f``).

    Raises:
        EgressError: ``invalid_argument`` naming the field.
    """
    upload = upload_target(out, f, storage)
    if out.image_codec not in (0, 1):
        raise invalid(f"{f}.image_codec", "only JPEG is supported")
    for name in ("width", "height"):
        value = getattr(out, name)
        if value and (value % 2 or not 16 <= value <= 3840):
            raise invalid(f"{f}.{name}", f"must be an even number of pixels from 16 to 3840, got {value}")
    prefix_path = r.prefix(out.filename_prefix or DEFAULT_NAME, f"{f}.filename_prefix")
    suffix = {eg.ImageFileSuffix.IMAGE_SUFFIX_TIMESTAMP: "timestamp",
              eg.ImageFileSuffix.IMAGE_SUFFIX_NONE_OVERWRITE: "none"}.get(out.filename_suffix, "index")
    return ImagesTarget(
        directory=str(prefix_path.parent), prefix=prefix_path.name, interval_s=float(out.capture_interval or 10),
        width=out.width, height=out.height, suffix=suffix,
        reported_prefix=f"{r.relative(prefix_path.parent)}/".removeprefix("./"), upload=upload)
