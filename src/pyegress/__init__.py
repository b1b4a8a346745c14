"""pyegress: a self-hosted recording and egress service for LiveKit rooms."""

__version__ = "0.1.0"
