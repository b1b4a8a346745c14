"""Which Egress API the operator commands talk to, and how its answers become messages and exit statuses.

The server is any LiveKit Egress API (Twirp ``livekit.Egress``): ``pyegress serve``, or livekit-server handing
jobs to egress workers. Its URL and key pair come from ``--url`` / ``--api-key`` / ``--api-secret``, else from
``LIVEKIT_URL`` / ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET`` as LiveKit's ``lk`` reads them (docs/cli.md).
The secret goes into the request's signed token only: no message prints it.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn, TypeVar
from urllib.parse import urlsplit

import typer

if TYPE_CHECKING:
    from livekit.api import EgressService

T = TypeVar("T")

EXIT_FAILED = 1
"""The server answered with an error, could not be reached, or the egress ended EGRESS_FAILED / EGRESS_ABORTED."""
EXIT_USAGE = 2
"""Bad options or request file (click's own status for usage errors)."""
EXIT_INTERRUPTED = 130
"""A second Ctrl-C gave up waiting for an egress to end (128 + SIGINT, as shells report it)."""

REQUEST_TIMEOUT_S = 30.0

def fail(message: str, status: int = EXIT_FAILED) -> NoReturn:
    """Print ``pyegress: message`` to stderr and exit with ``status``."""
    typer.echo(f"pyegress: {message}", err=True)
    raise typer.Exit(status)


@dataclass(frozen=True)
class Connection:
    """An Egress API's base URL and the key pair that signs each request's token (the ``roomRecord`` grant)."""

    url: str
    api_key: str
    api_secret: str = field(repr=False)

    @classmethod
    def resolve(cls, url: str | None, api_key: str | None, api_secret: str | None) -> "Connection":
        """The options given, else the ``LIVEKIT_*`` variables; exits 2 naming whatever is missing or a URL
        that is not ``http(s)://`` or ``ws(s)://`` (livekit-api maps ``ws`` to ``http``)."""
        url = url or os.environ.get("LIVEKIT_URL", "")
        api_key = api_key or os.environ.get("LIVEKIT_API_KEY", "")
        api_secret = api_secret or os.environ.get("LIVEKIT_API_SECRET", "")
        missing = [name for name, value in (("--url / LIVEKIT_URL", url), ("--api-key / LIVEKIT_API_KEY", api_key),
                                            ("--api-secret / LIVEKIT_API_SECRET", api_secret)) if not value]
        if missing:
            fail(f"missing {', '.join(missing)}", EXIT_USAGE)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            fail("--url must be http://, https://, ws:// or wss:// with a host (as LIVEKIT_URL)", EXIT_USAGE)
        return cls(url, api_key, api_secret)

    @property
    def display_url(self) -> str:
        """The URL without user info or query, which may hold credentials, for messages."""
        parts = urlsplit(self.url)
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        return f"{parts.scheme}://{host}{parts.path}"

    def run(self, action: Callable[["EgressService"], Awaitable[T]]) -> T:
        """Run ``action`` with livekit-api's EgressService client for this server, in a fresh event loop.

        Failures exit with a message instead of a traceback: a Twirp error prints its code, HTTP status and
        message (exit 1); an unreachable server or one silent for ``REQUEST_TIMEOUT_S`` says so (exit 1).
        """
        import asyncio
        import warnings

        import aiohttp
        from jwt.warnings import InsecureKeyLengthWarning
        from livekit import api

        async def with_client() -> T:
            # PyJWT warns on every token signed with a short secret (livekit-server --dev's "secret")
            warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
            async with api.LiveKitAPI(self.url, self.api_key, self.api_secret,
                                      timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as lk:
                return await action(lk.egress)

        try:
            return asyncio.run(with_client())
        except api.TwirpError as e:
            fail(twirp_message(e))
        except aiohttp.ClientConnectorError as e:
            fail(f"cannot reach {self.display_url}: {e.os_error.strerror or e.os_error}")
        except aiohttp.ClientError as e:
            fail(f"{self.display_url}: {type(e).__name__}: {e}")
        except asyncio.TimeoutError:
            fail(f"{self.display_url} did not answer within {REQUEST_TIMEOUT_S:g} s")


def twirp_message(e) -> str:
    """A Twirp error (livekit-api's ``TwirpError``) as ``code (HTTP status): message``."""
    return f"{e.code} (HTTP {e.status})" + (f": {e.message}" if e.message else "")
