package main

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/livekit/media-sdk/jitter"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// ptsFromTimestamp is a sync engine that takes the RTP timestamp for the PTS (ms).
type ptsFromTimestamp struct{}

func (ptsFromTimestamp) PrimeForStart(pkt jitter.ExtPacket) ([]jitter.ExtPacket, int, bool) {
	return []jitter.ExtPacket{pkt}, 0, true
}
func (ptsFromTimestamp) GetPTS(pkt jitter.ExtPacket) (time.Duration, error) {
	return time.Duration(pkt.Timestamp) * time.Millisecond, nil
}
func (ptsFromTimestamp) OnSenderReport(func(time.Duration)) {}
func (ptsFromTimestamp) LastPTSAdjusted() time.Duration     { return 0 }
func (ptsFromTimestamp) Close()                             {}

const testLatency = 100 * time.Millisecond

func newTestReader(out *bytes.Buffer) *trackReader {
	c, _ := codecFor("video/VP8")
	t := &trackReader{sid: "TR_test", codec: c, video: true, sync: ptsFromTimestamp{}, out: newFrameWriter(out, 0),
		kick: make(chan struct{}, 1)}
	t.buffer = jitter.NewBuffer(paddingAware{c.newDepacketizer()}, testLatency, t.onSample)
	return t
}

// vp8 is a one-packet VP8 frame (RFC 7741 §4.2: S bit set, partition 0; then the frame tag's P bit).
func vp8(sn uint16, key bool) *rtp.Packet {
	tag := byte(1)
	if key {
		tag = 0
	}
	return &rtp.Packet{Header: rtp.Header{SequenceNumber: sn, Timestamp: uint32(sn), Marker: true},
		Payload: []byte{0x10, tag, byte(sn)}}
}

type written struct {
	pts       int64 // ms
	key, loss bool
}

func samples(t *testing.T, b *bytes.Buffer) []written {
	var out []written
	for b.Len() > 0 {
		h := b.Next(headerSize)
		if len(h) < headerSize || h[0] != frameSample {
			t.Fatalf("bad frame header %v", h)
		}
		b.Next(int(binary.LittleEndian.Uint32(h[12:])))
		pts := int64(binary.LittleEndian.Uint64(h[4:])) / int64(time.Millisecond)
		out = append(out, written{pts, h[1]&flagKeyframe != 0, h[1]&flagLoss != 0})
	}
	return out
}

func TestSamplesBehindALossWaitForAKeyframe(t *testing.T) {
	var out bytes.Buffer
	r := newTestReader(&out)
	defer r.buffer.Close()
	now := time.Now()
	for _, p := range []*rtp.Packet{vp8(1, false), vp8(2, true), vp8(3, false), vp8(3, false), vp8(4, false)} {
		r.push(p, now)
	}
	// 5 never comes: once the buffer gives up on it, 6 and 7 come out, predicted from what is lost
	expired := now.Add(-2 * testLatency)
	r.push(vp8(6, false), expired)
	r.push(vp8(7, false), expired)
	r.push(vp8(7, false), expired)
	r.mu.Lock()
	due := !r.pliDue.IsZero()
	r.mu.Unlock()
	if !due {
		t.Fatal("no keyframe asked for after the loss")
	}
	r.push(vp8(8, true), now)
	r.push(vp8(9, false), now)

	want := []written{{2, true, false}, {3, false, false}, {4, false, false}, {8, true, true}, {9, false, false}}
	got := samples(t, &out)
	if len(got) != len(want) {
		t.Fatalf("wrote %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("wrote %v, want %v", got, want)
		}
	}
	if !r.pliDue.IsZero() {
		t.Fatal("a keyframe is still asked for after one came")
	}
}

func TestPaddingHoldsNothingUp(t *testing.T) {
	var out bytes.Buffer
	r := newTestReader(&out)
	defer r.buffer.Close()
	now := time.Now()
	r.push(vp8(1, true), now)
	r.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: 2, Timestamp: 1, Padding: true}}, now)
	r.push(vp8(3, false), now)
	got := samples(t, &out)
	if len(got) != 2 || got[1] != (written{3, false, false}) {
		t.Fatalf("wrote %v: the frame after padding is held up or flagged", got)
	}
}

func TestNacksGoOutOnlyWhilePacketsAreMissing(t *testing.T) {
	var out bytes.Buffer
	r := newTestReader(&out)
	r.nack, r.gap = true, make(chan struct{}, 1)
	nacked := make(chan []uint16, 16)
	r.writeRTCP = func(pkts []rtcp.Packet) {
		for _, p := range pkts {
			var sns []uint16
			for _, pair := range p.(*rtcp.TransportLayerNack).Nacks {
				sns = append(sns, pair.PacketList()...)
			}
			nacked <- sns
		}
	}
	stop := make(chan struct{})
	defer close(stop)
	go r.nacks(stop)
	quiet := func(d time.Duration) {
		select {
		case sns := <-nacked:
			t.Fatalf("NACK for %v with nothing missing", sns)
		case <-time.After(d):
		}
	}

	for sn := uint16(1); sn <= 3; sn++ {
		r.push(vp8(sn, sn == 1), time.Now())
	}
	quiet(3 * nackInterval)
	r.push(vp8(6, false), time.Now()) // 4 and 5 went missing
	select {
	case sns := <-nacked:
		if len(sns) != 2 || sns[0] != 4 || sns[1] != 5 {
			t.Fatalf("NACK for %v, want [4 5]", sns)
		}
	case <-time.After(nackInterval):
		t.Fatal("no NACK for the missing packets")
	}
	r.push(vp8(4, false), time.Now())
	r.push(vp8(5, false), time.Now())
	time.Sleep(nackInterval + nackInterval/2) // one may have been on its way
	for len(nacked) > 0 {
		<-nacked
	}
	quiet(3 * nackInterval)
}
