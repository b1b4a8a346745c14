"""A UDP relay that loses packets on purpose: a lossy network between WebRTC clients and livekit-server.

It works like a NAT. Clients send to the relay's ``listen`` address (livekit-server advertises it as its
ICE candidate, see :func:`relay_rtc_config`); each client source address gets an upstream socket of its
own toward livekit-server's real media port, so what the server sends back to that socket goes to that
client, from the ``listen`` address. Packets server→client ("down") and client→server ("up") are dropped
at random (``down_loss``, ``up_loss``), in bursts of ``burst`` packets, or all of them for a while
(:meth:`LossyRelay.blackout`). Counters say what really happened, per direction and per client flow.

Only SRTP and SRTCP are lost (first byte 128-191, RFC 7983): STUN and DTLS always pass, so the
connection comes up as quickly as ever and only the media path is lossy. RTP and RTCP are told apart
by the payload-type byte, which SRTP leaves in the clear (RFC 5761 §4).
"""

from __future__ import annotations

import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

DOWN, UP = "down", "up"


def packet_kind(data: bytes) -> str:
    """``stun``, ``dtls``, ``rtp``, ``rtcp`` or ``other`` (RFC 7983 §7, RFC 5761 §4)."""
    if not data:
        return "other"
    b = data[0]
    if b < 4:
        return "stun"
    if 20 <= b < 64:
        return "dtls"
    if 128 <= b < 192:
        return "rtcp" if len(data) > 1 and 192 <= data[1] <= 223 else "rtp"
    return "other"


#: RTCP feedback by (packet type, FMT) of an SRTCP packet's first, clear, header (RFC 4585 §6.1, RFC 5104 §4.3).
FEEDBACK = {(205, 1): "nack", (206, 1): "pli", (206, 4): "fir", (205, 15): "twcc", (206, 15): "remb"}


@dataclass
class Counters:
    """Packets of one direction: every packet, and the media (RTP, RTCP) among them.

    ``rtp_repeats``: RTP packets whose (SSRC, sequence number) came before, whether it was dropped or
    not: retransmissions on the media's own SSRC. ``rtp_by_pt``: RTP packets by payload type (an RTX
    stream, RFC 4588, has its own). ``feedback``: RTCP packets by their first report's kind
    (``nack``, ``pli``, ``fir``, ``twcc``, ``remb``, else ``rtcp-<pt>``), dropped or not.
    """

    forwarded: int = 0
    dropped: int = 0
    bytes_forwarded: int = 0
    rtp_forwarded: int = 0
    rtp_dropped: int = 0
    rtcp_forwarded: int = 0
    rtcp_dropped: int = 0
    rtp_repeats: int = 0
    rtp_by_pt: dict[int, int] = field(default_factory=dict)
    feedback: dict[str, int] = field(default_factory=dict)
    _seen: set = field(default_factory=set, repr=False)

    def count(self, kind: str, data: bytes, dropped: bool) -> None:
        if dropped:
            self.dropped += 1
        else:
            self.forwarded += 1
            self.bytes_forwarded += len(data)
        if kind not in ("rtp", "rtcp"):
            return
        name = f"{kind}_{'dropped' if dropped else 'forwarded'}"
        setattr(self, name, getattr(self, name) + 1)
        if kind == "rtcp":
            what = FEEDBACK.get((data[1], data[0] & 0x1F), f"rtcp-{data[1]}")
            self.feedback[what] = self.feedback.get(what, 0) + 1
        elif len(data) >= 12:
            pt = data[1] & 0x7F
            self.rtp_by_pt[pt] = self.rtp_by_pt.get(pt, 0) + 1
            key = (data[8:12], data[2:4])  # SSRC, sequence number (a test's minutes do not wrap it)
            if key in self._seen:
                self.rtp_repeats += 1
            self._seen.add(key)

    def copy(self) -> "Counters":
        return Counters(**{k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(self).items()
                           if k != "_seen"})

    def add(self, other: "Counters") -> None:
        for k, v in vars(other).items():
            if isinstance(v, dict):
                mine = getattr(self, k)
                for key, n in v.items():
                    mine[key] = mine.get(key, 0) + n
            elif k != "_seen":
                setattr(self, k, getattr(self, k) + v)


@dataclass
class Flow:
    """One client (its source address) and its upstream socket toward the server."""

    client: tuple[str, int]
    upstream: socket.socket
    down: Counters = field(default_factory=Counters)
    up: Counters = field(default_factory=Counters)
    last_seen: float = 0.0


class LossyRelay:
    """Relays UDP between clients sending to ``listen`` and the server at ``upstream``, losing packets.

    ``down_loss``/``up_loss``: the chance a media packet server→client / client→server is dropped; a drop
    starts a burst of ``burst`` consecutive media packets of that flow and direction. ``seed`` makes the
    losses repeatable. Runs on a thread of its own; use as a context manager (or :meth:`start`/:meth:`close`).
    """

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], down_loss: float = 0.0,
                 up_loss: float = 0.0, burst: int = 1, seed: int | None = None) -> None:
        self.listen, self.upstream = listen, upstream
        self.down_loss, self.up_loss, self.burst = down_loss, up_loss, max(1, burst)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._sock.bind(listen)
        self._sock.setblocking(False)
        self._flows: dict[tuple[str, int], Flow] = {}
        self._bursting: dict[tuple[int, str], int] = {}  # (flow id, direction) → packets still to drop
        self._blackout: dict[str, float] = {}  # direction → monotonic time it ends
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._sock, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lossy-relay", daemon=True)

    # ---- control ----------------------------------------------------------
    def start(self) -> "LossyRelay":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopped.set()
        self._wake_w.send(b"x")
        if self._thread.is_alive():
            self._thread.join(5)
        for flow in self._flows.values():
            flow.upstream.close()
        for s in (self._sock, self._wake_r, self._wake_w):
            s.close()
        self._selector.close()

    def __enter__(self) -> "LossyRelay":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def set_loss(self, down: float | None = None, up: float | None = None, burst: int | None = None) -> None:
        """Change the loss from now on."""
        with self._lock:
            if down is not None:
                self.down_loss = down
            if up is not None:
                self.up_loss = up
            if burst is not None:
                self.burst = max(1, burst)

    def blackout(self, seconds: float, direction: str = DOWN) -> None:
        """Drop every media packet of ``direction`` (``down``, ``up``) for the next ``seconds``."""
        with self._lock:
            self._blackout[direction] = time.monotonic() + seconds

    # ---- what happened ----------------------------------------------------
    def flows(self) -> list[Flow]:
        """Every client flow so far (a snapshot of their counters)."""
        with self._lock:
            return [Flow(f.client, f.upstream, f.down.copy(), f.up.copy(), f.last_seen) for f in self._flows.values()]

    def totals(self, direction: str) -> Counters:
        """The counters of ``direction`` summed over every flow."""
        total = Counters()
        for flow in self.flows():
            total.add(getattr(flow, direction))
        return total

    # ---- the relay --------------------------------------------------------
    def _drop(self, flow: Flow, direction: str, kind: str) -> bool:
        if kind not in ("rtp", "rtcp"):
            return False
        with self._lock:
            if time.monotonic() < self._blackout.get(direction, 0.0):
                return True
            key = (id(flow), direction)
            if self._bursting.get(key, 0) > 0:
                self._bursting[key] -= 1
                return True
            if self._random.random() < (self.down_loss if direction == DOWN else self.up_loss):
                self._bursting[key] = self.burst - 1
                return True
            return False

    def _flow(self, client: tuple[str, int]) -> Flow:
        flow = self._flows.get(client)
        if flow is None:
            upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            upstream.bind((self.upstream[0], 0))
            upstream.connect(self.upstream)
            upstream.setblocking(False)
            flow = Flow(client, upstream)
            with self._lock:
                self._flows[client] = flow
            self._selector.register(upstream, selectors.EVENT_READ, flow)
        return flow

    def _relay(self, data: bytes, flow: Flow, direction: str) -> None:
        kind = packet_kind(data)
        dropped = self._drop(flow, direction, kind)
        with self._lock:
            getattr(flow, direction).count(kind, data, dropped)
            flow.last_seen = time.monotonic()
        if dropped:
            return
        try:
            if direction == UP:
                flow.upstream.send(data)
            else:
                self._sock.sendto(data, flow.client)
        except OSError:  # a full buffer or an unreachable peer: lost, as on a network
            pass

    def _run(self) -> None:
        while not self._stopped.is_set():
            for key, _ in self._selector.select(1.0):
                if key.data == "wake":
                    return
                sock = key.fileobj
                for _ in range(64):  # drain, a bounded number at a time
                    try:
                        if key.data is None:
                            data, client = sock.recvfrom(65535)
                            flow, direction = self._flow(client), UP
                        else:
                            data, flow, direction = sock.recv(65535), key.data, DOWN
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:  # ICMP unreachable reported on a connected socket
                        break
                    self._relay(data, flow, direction)


def relay_rtc_config(relay_ip: str = "127.0.0.2", server_ip: str = "127.0.0.1") -> dict:
    """livekit-server ``rtc:`` settings (for ``LiveKitServer(rtc=...)``) that make every client's media go
    through a relay on ``relay_ip:P`` toward the server on ``server_ip:P``, ``P`` its ``udp_port``
    (``LiveKitServer.rtc_udp_port``; the relay starts once the server has):

    - its UDP mux listens on ``server_ip`` only (loopback candidates on, every other IP filtered out);
    - the one candidate it advertises is rewritten to ``relay_ip`` (an explicit ``node_ip`` is a NAT 1:1);
    - ICE lite: the server never sends connectivity checks of its own, which would find the clients'
      host addresses directly; it answers the checks the clients send to the relay, so the address it
      sends media to is the relay's upstream socket of that client;
    - no ICE over TCP (and no TURN, off in dev mode): UDP through the relay is the only path.
    """
    return {"tcp_port": 0, "node_ip": relay_ip, "use_ice_lite": True,
            "enable_loopback_candidate": True, "ips": {"includes": [f"{server_ip}/32"]}}
