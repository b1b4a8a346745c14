"""Identifiers in LiveKit's formats."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def new_egress_id() -> str:
    """A new egress ID: ``EG_`` and 12 alphanumeric characters, as LiveKit's."""
    return "EG_" + "".join(secrets.choice(_ALPHABET) for _ in range(12))
