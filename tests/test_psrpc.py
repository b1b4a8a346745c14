"""psrpc wire details that must match the Go side byte for byte (docs/psrpc.md §1-§3, §5)."""

from __future__ import annotations

import base64
import hashlib

from livekit.protocol import egress as eg

from pyegress.bus.admission import request_cost
from pyegress.service.admission import CpuAdmission
from pyegress.psrpc.pb import psrpc_internal_pb2 as pb
from pyegress.psrpc.pb import rpc_egress_pb2 as rpc
from pyegress.psrpc.rpc import channel, unwrap, wrap
from pyegress.config import CPUCostConfig


def test_channel_names_are_psrpc_legacy_form():
    assert channel("EgressInternal", "StartEgress", "", "REQ") == "EgressInternal|StartEgress|REQ"
    assert channel("EgressHandler", "StopEgress", "EG_abc", "RCLAIM") == "EgressHandler|StopEgress|EG_abc|RCLAIM"
    # psrpc channels_test.go cases: '-' -> u+002d, 'É' -> u+00c9, an astral rune -> U+xxxxxxxx
    assert channel("a-b", "É", "\U0001f680", "RES") == "au+002db|u+00c9|U+0001f680|RES"


def test_envelope_bytes_match_the_worked_example():
    claim = pb.ClaimRequest(request_id="REQ_abc", server_id="SRV_def", affinity=1.0)
    payload = wrap(claim)
    assert payload.hex() == ("0a29747970652e676f6f676c65617069732e636f6d2f696e7465726e616c2e436c61696d52657175657374"
                             "12170a075245515f61626312075352565f6465661d0000803f")
    assert base64.b64encode(hashlib.sha256(payload).digest()).decode() == \
        "k1wZSkNFKCmJ+zNjDiLHiLgAQRGKmYQOavEMEElNr1E="
    assert unwrap(payload, pb.ClaimRequest) == claim
    assert unwrap(payload, pb.Response) is None  # another type on the channel is dropped, never misread


def test_start_egress_request_field_numbers():
    req = rpc.StartEgressRequest(egress_id="EG_1", room_id="RM_1",
                                 room_composite=eg.RoomCompositeEgressRequest(room_name="r"))
    raw = req.SerializeToString()
    assert raw.startswith(b"\x0a\x04EG_1")  # field 1
    assert b"\x2a" in raw and b"\x1a\x04RM_1" in raw  # room_composite = 5, room_id = 3


def test_cpu_admission_follows_livekit_rules():
    costs = CPUCostConfig(max_cpu_utilization=0.8, room_composite_cpu_cost=1.0, track_cpu_cost=0.25)
    composite = rpc.StartEgressRequest(room_composite=eg.RoomCompositeEgressRequest(room_name="r"))
    track = rpc.StartEgressRequest(track=eg.TrackEgressRequest(room_name="r"))
    assert request_cost(composite, costs) == 1.0 and request_cost(track, costs) == 0.25
    assert request_cost(rpc.StartEgressRequest(estimated_cpu=3.0, track=track.track), costs) == 3.0
    admission = CpuAdmission(costs, cores=2)
    assert admission.available() == 2 and admission.can_accept(2.0)  # idle: every core
    admission.reserve("EG_a", 1.0)
    assert abs(admission.available() - 0.6) < 1e-9  # 2 x 0.8 - 1.0
    assert not admission.can_accept(1.0) and admission.can_accept(0.25)
    admission.release("EG_a")
    assert admission.available() == 2
