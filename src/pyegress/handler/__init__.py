"""Egress workers: one OS process per egress, driven over stdin/stdout by the service."""
