"""Named, deterministic room-composite scenes: what pyegress draws for a few typical rooms.

Each :class:`Scene` builds a :class:`~pyegress.media.compose.roster.Roster` and a
:class:`~pyegress.media.compose.video.VideoCompositor` the way a room composite does, feeds every camera the
generated publishers' known picture (:class:`~.patterns.VideoPattern`, fixed frame numbers) and a screen share a
drawn slide, runs a fake clock, and returns the composed canvas as RGB. Nothing depends on the wall clock or on
randomness, so a scene renders to the same pixels on every run (fonts and libswscale being equal).

The pictures feed ``docs/layouts.md`` (``scripts/layouts``) and the golden tests
(``tests/test_layouts_golden.py``)::

    python -m pyegress.devtools.scenes --out docs/layouts       # gallery pictures, 960 px wide
    python -m pyegress.devtools.scenes --golden tests/golden     # references, half size
    python -m pyegress.devtools.scenes --check tests/golden      # compare (see :func:`similarity`)
    python -m pyegress.devtools.scenes --list
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from livekit.protocol import models
from PIL import Image, ImageFilter

from ..contract.layouts import Layout
from ..media.compose.roster import Roster
from ..media.compose.video import STAGE_HOLD_S, VideoCompositor
from .patterns import VideoPattern, slide

#: Camera size of the generated publishers (``pyegress.devtools.publisher`` defaults)
CAMERA_SIZE = (640, 360)
#: Width (px) of the gallery pictures in docs/layouts
GALLERY_WIDTH = 960
#: Names for participants in join order (people from computing history)
NAMES = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Katherine Johnson", "Edsger Dijkstra",
         "Barbara Liskov", "Donald Knuth", "Margaret Hamilton", "Claude Shannon", "Frances Allen",
         "John Backus", "Radia Perlman")


class FakeClock:
    """A settable clock (s) for the compositor and roster: speaking marks and the stage's hold count in it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Room:
    """A room being built: participants join in call order (their pattern index and colour is the order).

    ``width`` x ``height``: canvas px; ``layout``: a LiveKit layout name.
    """

    def __init__(self, width: int = 1280, height: int = 720, layout: str = "grid") -> None:
        self.clock = FakeClock()
        self.roster = Roster()
        self.comp = VideoCompositor(width, height, Layout.parse(layout), roster=self.roster, clock=self.clock)
        self.joined: list[str] = []  # identities in join order

    def _identity(self, name: str) -> str:
        identity = f"p{len(self.joined)}"
        self.joined.append(identity)
        return identity

    def camera(self, name: str, size: tuple[int, int] = CAMERA_SIZE, *, muted: bool = False,
               mic: bool = True, mic_muted: bool = False) -> str:
        """A participant with a camera (``size`` px, the pattern of its join index, a fixed frame) and a
        microphone; ``muted``: the camera is muted (placeholder). Returns the identity."""
        index = len(self.joined)
        identity = self._identity(name)
        sid = f"TR_V_{identity}"
        self.roster.add_track(sid, identity, name, "video", models.TrackSource.CAMERA, muted=muted)
        if mic:
            self.roster.add_track(f"TR_A_{identity}", identity, name, "audio", models.TrackSource.MICROPHONE,
                                  muted=mic_muted)
        self.comp.add_tile(sid)
        w, h = size
        # its own copy: the pattern reuses one buffer and the compositor keeps the frame by reference
        self.comp.update(sid, bytes(VideoPattern(w, h, 30, index).render(120 + 37 * index)), w, h)
        return identity

    def audio_only(self, name: str, *, mic_muted: bool = False) -> str:
        """A participant who publishes only a microphone (an initials tile). Returns the identity."""
        identity = self._identity(name)
        self.roster.add_track(f"TR_A_{identity}", identity, name, "audio", models.TrackSource.MICROPHONE,
                              muted=mic_muted)
        return identity

    def share(self, identity: str, picture: tuple[bytes, int, int] | None = None) -> None:
        """``identity`` (already in the room) shares a screen: ``picture`` (I420, w, h), default :func:`slide`."""
        name = next(t.name for t in self.roster.tiles(self.clock.now) if t.identity == identity)
        sid = f"TR_S_{identity}"
        self.roster.add_track(sid, identity, name, "video", models.TrackSource.SCREEN_SHARE)
        self.comp.add_tile(sid, whole=True)
        self.comp.update(sid, *(picture or slide()))

    def speak(self, *identities: str, for_s: float = 0.0) -> None:
        """``identities`` (loudest first) start speaking now; the clock then runs ``for_s`` s, the stage
        being looked at on the way as a compositor does every frame."""
        self.comp.arrangement()
        self.roster.set_speakers(list(identities), self.clock.now)
        self.comp.arrangement()
        self.clock.now += for_s
        self.comp.arrangement()

    def rgb(self) -> np.ndarray:
        """The composed canvas as ``(height, width, 3)`` uint8 RGB (BT.601 limited range, chroma repeated)."""
        frame, _ = self.comp.compose()
        return i420_to_rgb(frame.to_ndarray(), frame.width, frame.height)


def i420_to_rgb(yuv: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a ``(H*3/2, W)`` yuv420p array (PyAV's layout): BT.601 limited range in
    integer math, each chroma sample repeated over its 2x2 pixels (no filter: the same bytes everywhere)."""
    y = yuv[:height].astype(np.int32) - 16
    chroma = yuv[height:].reshape(2, height // 2, width // 2).astype(np.int32) - 128
    u, v = (np.repeat(np.repeat(c, 2, axis=0), 2, axis=1) for c in chroma)
    r = (298 * y + 409 * v + 128) >> 8
    g = (298 * y - 100 * u - 208 * v + 128) >> 8
    b = (298 * y + 516 * u + 128) >> 8
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Scene:
    """A named scene: ``build`` makes the :class:`Room` as it is when drawn; ``title`` says what it shows."""

    name: str
    title: str
    build: Callable[[], Room]

    def room(self) -> Room:
        return self.build()

    def render(self) -> np.ndarray:
        """The composed picture, ``(height, width, 3)`` uint8 RGB."""
        return self.build().rgb()


# ---- the scenes ----------------------------------------------------------------------------------------------

def _grid(n: int, layout: str = "grid", width: int = 1280, height: int = 720) -> Room:
    room = Room(width, height, layout)
    for name in NAMES[:n]:
        room.camera(name)
    return room


def _four(layout: str = "grid") -> Room:
    """Four cameras; the fourth has its microphone muted (the label's mark)."""
    room = Room(layout=layout)
    for name in NAMES[:3]:
        room.camera(name)
    room.camera(NAMES[3], mic_muted=True)
    return room


def _camera_muted() -> Room:
    room = _four()
    room.comp.arrangement()  # shown once first: muting then sorts her last, but her tile keeps its cell
    room.roster.set_muted("TR_V_p1", True)
    return room


def _audio_only(layout: str = "grid", n: int = 4) -> Room:
    room = Room(layout=layout)
    room.camera(NAMES[0])
    room.camera(NAMES[1])
    room.audio_only(NAMES[2])
    if n > 3:
        room.audio_only(NAMES[3], mic_muted=True)
    return room


def _screen_share(layout: str = "grid") -> Room:
    room = _four(layout)
    room.share("p1")
    return room


def _speaking(layout: str, hold_s: float) -> Room:
    room = _four(layout)
    room.speak("p2", for_s=hold_s)
    return room


def _portrait_camera() -> Room:
    room = Room()
    room.camera(NAMES[0])
    room.camera(NAMES[1], size=(360, 640))  # a phone held upright
    room.camera(NAMES[2])
    room.camera(NAMES[3])
    return room


def _long_names() -> Room:
    room = Room()
    room.camera("Maximiliane Alexandra Friederike von Hohenzollern-Sigmaringen")
    room.camera("Bartholomew Fitzgerald-Worthington III, Principal Engineer, Video Platform", mic_muted=True)
    room.camera("Jo")
    room.audio_only("Hubert Blaine Wolfeschlegelsteinhausenbergerdorff Senior of Philadelphia")
    # right to left: the cut and the ellipsis are at its left, where it ends
    room.camera("عبد الرحمن بن محمد بن عبد الله بن عبد العزيز آل سعود الفيصل الثاني من مدينة الرياض")
    return room


def _international_names() -> Room:
    room = Room()
    room.camera("Анна Кузнецова")
    room.camera("王小明")
    room.camera("محمد الأحمد", mic_muted=True)
    room.camera("דוד כהן")
    room.camera("Zoë Ñúñez 🎸")
    room.audio_only("田中 花子")
    room.audio_only("Ψυχή Παπαδοπούλου")
    room.audio_only("سارة خليل")
    return room


SCENES: dict[str, Scene] = {s.name: s for s in (
    Scene("grid-1", "One camera fills the canvas.", lambda: _grid(1)),
    Scene("grid-2", "Two cameras side by side (2x1), each cropped to fill its half.", lambda: _grid(2)),
    Scene("grid-3", "Three cameras on a 2x2 grid; the empty cell shows the background.", lambda: _grid(3)),
    Scene("grid-4", "Four cameras on a 2x2 grid; the last one's microphone is muted.", lambda: _four()),
    Scene("grid-5", "Five cameras on a 3x3 grid: two rows, the second left-aligned.", lambda: _grid(5)),
    Scene("grid-9", "Nine cameras fill the 3x3 grid.", lambda: _grid(9)),
    Scene("grid-10", "Ten cameras: past nine LiveKit goes to the 4x4 grid (three rows).", lambda: _grid(10)),
    Scene("camera-muted", "Grace Hopper muted her camera: the placeholder silhouette in her cell, her label stays.",
          _camera_muted),
    Scene("audio-only", "Two participants publish only a microphone: initials tiles (LiveKit shows no tile).",
          _audio_only),
    Scene("screen-share", "Grace Hopper shares a 16:10 screen: the grid becomes the speaker layout, the share is "
          "letterboxed on the stage, everyone in the carousel.", _screen_share),
    Scene("speaker-4", "Speaker layout, nobody has spoken: the first to join is on the stage.",
          lambda: _four("speaker")),
    Scene("speaker-hold", "Alan Turing started speaking 0.5 s ago: his ring shows, the stage has not changed yet.",
          lambda: _speaking("speaker", 0.5)),
    Scene("speaker-speaking", "Alan Turing has spoken for 1.5 s: he has the stage, with the speaking ring.",
          lambda: _speaking("speaker", STAGE_HOLD_S)),
    Scene("single-speaker", "Single-speaker: only the speaker, on the whole canvas.",
          lambda: _speaking("single-speaker", STAGE_HOLD_S)),
    Scene("grid-speaking", "A speaker on the grid gets the ring; no tile moves.", lambda: _speaking("grid", 0.0)),
    Scene("names-long", "Long names are cut at a grapheme with an ellipsis (an Arabic one at its left end).",
          _long_names),
    Scene("names-international", "Cyrillic, CJK, Arabic, Hebrew, Greek and emoji names; initials tiles for "
          "three who have no camera.", _international_names),
    Scene("grid-light", "grid-light: the background (the empty cell) and the audio-only tile are light.",
          lambda: _audio_only("grid-light", 3)),
    Scene("speaker-light", "speaker-light with a share: the letterbox and the carousel's empty space are white.",
          lambda: _screen_share("speaker-light")),
    Scene("portrait-grid", "A portrait canvas (720x1280): four cameras on a 2x2 grid of tall tiles, cropped.",
          lambda: _grid(4, width=720, height=1280)),
    Scene("portrait-grid-10", "Ten on a 720x1280 canvas: 4x4 needs 960 px of width, so a 3x3 page holds nine "
          "and the tenth is not shown.", lambda: _grid(10, width=720, height=1280)),
    Scene("portrait-camera", "A 360x640 phone camera in a landscape tile is shown whole, not cropped.",
          _portrait_camera),
)}


# ---- golden references ---------------------------------------------------------------------------------------
#: Golden references are the canvas at 1/GOLDEN_SCALE size (2x2 box average): small files, and sub-pixel
#: rendering differences are already halved
GOLDEN_SCALE = 2
#: Both pictures are blurred (Gaussian, this radius in golden px) before they are compared: a glyph edge moved by
#: a fraction of a pixel keeps its ink in the neighbourhood and nearly cancels, a mark that is missing does not
BLUR_PX = 2.0
#: The comparison also looks at every BLOCK_PX x BLOCK_PX block (golden px; 48 canvas px) on its own: a missing
#: mute mark or ring is a few hundred pixels, far too few to move the PSNR of the whole picture
BLOCK_PX = 24
#: Thresholds (dB), measured on this catalogue (tests/test_layouts_golden.py). Rendering differences pass:
#: another libswscale filter for the cameras (bicubic, Lanczos, area) >= 39 dB per block, every glyph half a
#: pixel off >= 33.8, every label a canvas pixel off >= 31.4. Real changes fail: a missing speaking ring
#: <= 27.3, mute mark <= 26.8, name label <= 18, a placeholder instead of a picture 4.9.
MIN_PSNR_DB = 38.0
MIN_BLOCK_PSNR_DB = 31.0


def golden_image(rgb: np.ndarray) -> Image.Image:
    """The golden-size image of a canvas ``(H, W, 3)`` uint8 RGB: ``W/GOLDEN_SCALE`` x ``H/GOLDEN_SCALE``."""
    return to_image(rgb, rgb.shape[1] // GOLDEN_SCALE)


@dataclass(frozen=True)
class Similarity:
    """How close a picture is to its reference (both RGB at the same size), all PSNR in dB over R, G and B:
    ``psnr_db`` of the whole blurred pictures, ``worst_block_db`` of their worst :data:`BLOCK_PX` block and its
    top-left ``worst_block`` (x, y) px, ``plain_psnr_db`` of the unblurred pictures (for information)."""

    psnr_db: float
    worst_block_db: float
    worst_block: tuple[int, int]
    plain_psnr_db: float

    @property
    def ok(self) -> bool:
        return self.psnr_db >= MIN_PSNR_DB and self.worst_block_db >= MIN_BLOCK_PSNR_DB

    def __str__(self) -> str:
        return (f"PSNR {self.psnr_db:.1f} dB (min {MIN_PSNR_DB}), worst {BLOCK_PX} px block {self.worst_block_db:.1f}"
                f" dB at {self.worst_block} (min {MIN_BLOCK_PSNR_DB}), unblurred PSNR {self.plain_psnr_db:.1f} dB")


def _psnr(mse: float) -> float:
    return 99.0 if mse <= 1e-10 else float(10 * np.log10(255.0 ** 2 / mse))


def similarity(actual: Image.Image | np.ndarray, expected: Image.Image | np.ndarray) -> Similarity:
    """Compare two RGB pictures of the same size (see :class:`Similarity`); :attr:`Similarity.ok` when they
    are alike within the thresholds above.

    Raises:
        ValueError: the sizes differ.
    """
    a, b = (np.asarray(x.convert("RGB") if isinstance(x, Image.Image) else x, dtype=np.uint8)
            for x in (actual, expected))
    if a.shape != b.shape:
        raise ValueError(f"sizes differ: {a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]}")
    plain = _psnr(float(((a.astype(np.float64) - b) ** 2).mean()))
    blurred = [np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(BLUR_PX)), dtype=np.float64)
               for x in (a, b)]
    err = ((blurred[0] - blurred[1]) ** 2).mean(axis=2)  # (H, W)
    h, w = err.shape
    bh, bw = min(BLOCK_PX, h), min(BLOCK_PX, w)
    # blocks overlap by half, the last flush with the edge: a mark on a boundary still lies in one block whole
    ys = sorted({*range(0, h - bh + 1, max(1, bh // 2)), h - bh})
    xs = sorted({*range(0, w - bw + 1, max(1, bw // 2)), w - bw})
    summed = np.pad(err.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # integral image: block sums in O(1)
    y0, x0 = np.array(ys)[:, None], np.array(xs)[None, :]
    blocks = (summed[y0 + bh, x0 + bw] - summed[y0, x0 + bw] - summed[y0 + bh, x0] + summed[y0, x0]) / (bh * bw)
    r, c = np.unravel_index(int(np.argmax(blocks)), blocks.shape)
    return Similarity(_psnr(float(err.mean())), _psnr(float(blocks[r, c])), (xs[c], ys[r]), plain)


def to_image(rgb: np.ndarray, width: int | None = None) -> Image.Image:
    """A PIL image of ``rgb`` ``(H, W, 3)``, scaled to ``width`` px wide (area filter) when given and smaller."""
    img = Image.fromarray(rgb, "RGB")
    if width and width < img.width:
        img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.BOX)
    return img


def write(names: list[str], out: Path, width: int | None = None, golden: bool = False) -> list[Path]:
    """Render scenes ``names`` to ``out/<name>.png``: scaled to ``width`` px wide, or to the golden size
    (:func:`golden_image`) with ``golden``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = out / f"{name}.png"
        rgb = SCENES[name].render()
        (golden_image(rgb) if golden else to_image(rgb, width)).save(path, optimize=True)
        paths.append(path)
    return paths


def check(names: list[str], golden: Path) -> int:
    """Compare scenes ``names`` with ``golden/<name>.png`` and print each :class:`Similarity`; failures count."""
    failed = 0
    for name in names:
        path = golden / f"{name}.png"
        if not path.exists():
            print(f"{name:22} no reference {path}")
            failed += 1
            continue
        result = similarity(golden_image(SCENES[name].render()), Image.open(path))
        failed += not result.ok
        print(f"{name:22} {'ok  ' if result.ok else 'FAIL'} {result}")
    return failed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pyegress.devtools.scenes", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help=f"write gallery pictures ({GALLERY_WIDTH} px wide) here")
    p.add_argument("--golden", type=Path, help="write golden references (half size) here: tests/golden")
    p.add_argument("--check", type=Path, metavar="GOLDEN", help="compare the scenes with the references there")
    p.add_argument("--width", type=int, default=GALLERY_WIDTH, help="gallery picture width in px (0: full size)")
    p.add_argument("--list", action="store_true", help="list the scenes and what they show")
    p.add_argument("scenes", nargs="*", help="scene names (default: all)")
    args = p.parse_args(argv)
    unknown = [n for n in args.scenes if n not in SCENES]
    if unknown:
        p.error(f"unknown scene(s) {', '.join(unknown)}; see --list")
    names = args.scenes or list(SCENES)
    if args.check:
        return min(1, check(names, args.check))
    if args.list or not (args.out or args.golden):
        for name in names:
            print(f"{name:22} {SCENES[name].title}")
        return 0
    for target, golden in ((args.out, False), (args.golden, True)):
        if target:
            for path in write(names, target, args.width or None, golden):
                print(f"{path} {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
