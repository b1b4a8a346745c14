"""HTTP APIs: LiveKit's Twirp Egress service (and, later, the REST dialects), one ASGI app."""
