"""Media pipeline: source → sync → compose → encode → outputs (see docs/architecture.md)."""
