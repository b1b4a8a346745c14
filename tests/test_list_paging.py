"""ListEgress pages (``page_token`` / ``next_page_token``, livekit_egress.proto) on the service itself: a stable
order, every egress once, and tokens that only continue the listing they came from."""

from __future__ import annotations

import asyncio

import pytest
from livekit.protocol import egress as eg
from livekit.protocol.models import TokenPagination

from pyegress.config import Settings
from pyegress.database.egress_store import EgressStore
from pyegress.errors import EgressError
from pyegress.service.egress_service import EgressService

S = eg.EgressStatus


@pytest.fixture
def service(tmp_path):
    settings = Settings(recordings_dir=tmp_path / "rec", log_dir=tmp_path / "logs", list_egress_page_size=2,
                        handler_pool_size=0, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    store = EgressStore(settings.database_url)
    for i in range(5):
        store.save(eg.EgressInfo(egress_id=f"EG_{'zyxwv'[i]}", room_name="a", status=S.EGRESS_ACTIVE, updated_at=i))
    store.save(eg.EgressInfo(egress_id="EG_b", room_name="b", status=S.EGRESS_COMPLETE))
    yield EgressService(settings, store)
    store.engine.dispose()


def list_egress(service, **fields) -> eg.ListEgressResponse:
    return asyncio.run(service.list_egress(eg.ListEgressRequest(**fields)))


def pages(service, **filters) -> list[list[str]]:
    token, out = TokenPagination(), []
    while True:
        reply = list_egress(service, page_token=token, **filters)
        out.append([i.egress_id for i in reply.items])
        if not reply.HasField("next_page_token"):
            return out
        token = reply.next_page_token


def test_pages_list_each_egress_once_in_the_order_they_were_created(service):
    assert pages(service, room_name="a") == [["EG_z", "EG_y"], ["EG_x", "EG_w"], ["EG_v"]]
    # without page_token: everything at once, as livekit-server answers
    everything = list_egress(service)
    assert [i.egress_id for i in everything.items] == ["EG_z", "EG_y", "EG_x", "EG_w", "EG_v", "EG_b"]
    assert not everything.HasField("next_page_token")


def test_a_page_continues_where_the_last_ended_while_egresses_change(service):
    first = list_egress(service, room_name="a", page_token=TokenPagination())
    service.store.save(eg.EgressInfo(egress_id="EG_z", room_name="a", status=S.EGRESS_COMPLETE, updated_at=99))
    service.store.save(eg.EgressInfo(egress_id="EG_new", room_name="a", status=S.EGRESS_STARTING))
    second = list_egress(service, room_name="a", page_token=first.next_page_token)
    assert [i.egress_id for i in second.items] == ["EG_x", "EG_w"]
    assert pages(service, room_name="a", active=True) == [["EG_y", "EG_x"], ["EG_w", "EG_v"], ["EG_new"]]


@pytest.mark.parametrize("case", ["garbage", "tampered", "other-room", "other-filter", "other-secret"])
def test_a_token_continues_only_its_own_listing(service, case):
    token = list_egress(service, room_name="a", page_token=TokenPagination()).next_page_token.token
    fields = {"room_name": "a"}
    if case == "garbage":
        token = "not a token!"
    elif case == "tampered":
        token = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    elif case == "other-room":
        fields["room_name"] = "b"
    elif case == "other-filter":
        fields["active"] = True
    else:
        service.settings.api_secret = "another secret"
    with pytest.raises(EgressError) as e:
        list_egress(service, page_token=TokenPagination(token=token), **fields)
    assert (e.value.code, e.value.meta, e.value.http_status) == ("invalid_argument", {"argument": "page_token"}, 400)
    assert e.value.msg.startswith("page_token: ")
