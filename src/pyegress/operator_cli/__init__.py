"""Operator commands for any LiveKit Egress API (pyegress or livekit-server), in the manner of LiveKit's ``lk``:
``pyegress egress start|list|stop|watch|update-layout|update-stream`` and ``pyegress record ROOM`` (docs/cli.md).

Modules: :mod:`.connection` (server, key pair, errors → exit statuses), :mod:`.options` (shared options),
:mod:`.requests` (requests from options and ``--request`` files), :mod:`.display` (EgressInfo for people),
:mod:`.follow` (Ctrl-C and waiting for an egress's end), :mod:`.egress` and :mod:`.record` (the commands).
"""

from .egress import egress_app
from .record import record

__all__ = ["egress_app", "record"]
