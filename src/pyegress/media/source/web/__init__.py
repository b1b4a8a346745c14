"""The web page source: headless Chromium (:mod:`.chromium`, :mod:`.cdp`), its screencast
(:mod:`.screencast`) and its sound (:mod:`.pulse`), driven by :class:`.page.WebSource`."""

from .page import END_RECORDING, START_RECORDING, WebSource

__all__ = ["END_RECORDING", "START_RECORDING", "WebSource"]
