"""Encoding once: the encoders (``encoder.py``) and the thread that feeds them and fans their packets out
to every output (``thread.py``)."""
