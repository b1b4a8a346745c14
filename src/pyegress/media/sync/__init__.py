"""Sync: the media clock every output's PTS come from."""
