"""LiveKit webhooks for egress events, delivered durably from an outbox table."""
