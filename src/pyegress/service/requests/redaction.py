"""The request an EgressInfo echoes: a copy without credentials, its stream keys masked."""

from __future__ import annotations

from ...contract.streams import redact_url


def redacted_request(req):
    """A copy of a request with stream keys masked and storage credentials removed, for EgressInfo
    (secrets are never echoed)."""
    copy = type(req)()
    copy.CopyFrom(req)
    _strip_credentials(copy)
    streams = list(getattr(copy, "stream_outputs", []))
    streams += [o.stream for o in getattr(copy, "outputs", []) if o.WhichOneof("config") == "stream"]
    if "output" in {o.name for o in copy.DESCRIPTOR.oneofs} and copy.WhichOneof("output") == "stream":
        streams.append(copy.stream)  # Node sends it beside stream_outputs: mask both
    for out in streams:
        masked = [redact_url(u) for u in out.urls]
        del out.urls[:]
        out.urls.extend(masked)
    return copy


# S3/AliOSS secret, access_key, session_token; GCP credentials; Azure account_key; ProxyConfig password
_SECRET_FIELDS = {"secret", "session_token", "credentials", "account_key", "access_key", "password"}


def _strip_credentials(message) -> None:
    """Clear every credential field (S3 secret, GCP credentials, Azure key, proxy password, ...) anywhere in
    ``message``."""
    for fd, value in message.ListFields():
        if fd.name in _SECRET_FIELDS and fd.type == fd.TYPE_STRING:
            message.ClearField(fd.name)
        elif fd.type == fd.TYPE_MESSAGE:
            if fd.is_repeated:
                if not fd.message_type.GetOptions().map_entry:
                    for item in value:
                        _strip_credentials(item)
            else:
                _strip_credentials(value)
