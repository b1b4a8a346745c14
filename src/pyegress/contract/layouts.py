"""Room composite layout names, as LiveKit has them: ``grid``, ``speaker``, ``single-speaker``, each
optionally suffixed ``-light`` or ``-dark`` (the background)."""

from __future__ import annotations

from dataclasses import dataclass

#: Background colours as (Y, U, V) in BT.601 limited range.
BACKGROUNDS = {"dark": (16, 128, 128), "light": (235, 128, 128)}
KNOWN_LAYOUTS = ("grid", "speaker", "single-speaker")


@dataclass(frozen=True)
class Layout:
    """A parsed layout name: ``kind`` is one of :data:`KNOWN_LAYOUTS`, ``background`` a (Y, U, V) triple."""

    kind: str
    background: tuple[int, int, int]

    @classmethod
    def parse(cls, name: str) -> "Layout":
        """Parse a LiveKit layout name; empty means ``grid-dark``.

        Raises:
            ValueError: the name is not a known layout.
        """
        name = (name or "grid").strip().lower()
        shade = "dark"
        for suffix in ("-light", "-dark"):
            if name.endswith(suffix):
                name, shade = name[: -len(suffix)], suffix[1:]
        if name not in KNOWN_LAYOUTS:
            raise ValueError(f"unknown layout {name!r}; expected one of {', '.join(KNOWN_LAYOUTS)} "
                             "with optional -light/-dark")
        return cls(name, BACKGROUNDS[shade])
