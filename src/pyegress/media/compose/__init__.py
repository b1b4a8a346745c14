"""Composition: layout geometry, the I420 video compositor and the audio mixer."""
