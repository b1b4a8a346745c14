package main

import (
	"errors"
	"io"
	"log"
	"sync"
	"time"

	"github.com/livekit/media-sdk/jitter"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/livekit/server-sdk-go/v2/pkg/synchronizer"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

const (
	// firstKeyframeWait: the SFU starts forwarding a subscription at a keyframe it asks the
	// publisher for itself, so the receiver asks only if none has come this long after subscribing.
	firstKeyframeWait = 500 * time.Millisecond
	// pliInterval: at most one PLI this often, repeated this often until a keyframe comes.
	// livekit-server passes at most one PLI a second on to the publisher, and after every PLI a
	// subscriber sends it stops retransmitting to that subscriber until the next keyframe
	// (FlagStopRTXOnPLI): a PLI too many costs the NACK repairs of everything until then.
	pliInterval = time.Second
	// nackInterval: how often the packets still missing are NACKed (RFC 4585 §6.2.1), until they
	// come or the jitter buffer gives up on them. livekit-server retransmits a packet at most 3
	// times, min(100 ms, 2 RTT) apart and after the original, ignoring NACKs in between; most of
	// the SDK's own NACKs (5 at most, never stopped by a retransmission) fall in that first gap,
	// so without these one lost retransmission would cost a keyframe.
	nackInterval = 110 * time.Millisecond
	// maxNacks: packets listed in one NACK at most, oldest first.
	maxNacks = 256
)

// trackReader turns one subscribed track's RTP into synchronized samples on the frame stream:
// RTP → duplicate check → LiveKit's jitter buffer (reorders, waits for NACKed packets, hands out
// whole samples) → loss check → depacketizer → the sync engine's PTS for the sample's RTP timestamp.
type trackReader struct {
	number uint16
	sid    string
	codec  codec
	video  bool
	track  *webrtc.TrackRemote
	ssrc   uint32
	rp     *lksdk.RemoteParticipant
	sync   synchronizer.TrackSync
	out    *frameWriter
	buffer *jitter.Buffer
	kick   chan struct{} // wakes the PLI loop: a PLI may be due now
	gap    chan struct{} // wakes the NACK loop: a packet went missing
	// writeRTCP sends on the subscriber connection; nack: the track's codec has NACK feedback
	writeRTCP func([]rtcp.Packet)
	nack      bool

	mu        sync.Mutex
	seq       sequence
	primed    bool
	decodable bool      // video: a keyframe was written since the start and the last loss; until then nothing is
	loss      bool      // samples were lost since the last one written
	pliDue    time.Time // when the next PLI goes out; zero: no keyframe wanted
	lastPLI   time.Time
}

func newTrackReader(number uint16, sid string, c codec, track *webrtc.TrackRemote, rp *lksdk.RemoteParticipant,
	ts synchronizer.TrackSync, out *frameWriter, latency time.Duration, writeRTCP func([]rtcp.Packet)) *trackReader {
	t := &trackReader{number: number, sid: sid, codec: c, video: track.Kind() == webrtc.RTPCodecTypeVideo,
		track: track, ssrc: uint32(track.SSRC()), rp: rp, sync: ts, out: out, kick: make(chan struct{}, 1),
		gap: make(chan struct{}, 1), writeRTCP: writeRTCP}
	for _, fb := range track.Codec().RTCPFeedback {
		t.nack = t.nack || fb.Type == webrtc.TypeRTCPFBNACK && fb.Parameter == ""
	}
	if t.video {
		t.pliDue = time.Now().Add(firstKeyframeWait)
	}
	// Losses are found on the samples themselves (onSample): media-sdk v0.1.1 reports a loss only
	// after handing out the samples queued behind it.
	t.buffer = jitter.NewBuffer(paddingAware{c.newDepacketizer()}, latency, t.onSample)
	return t
}

// paddingAware is the codec as the jitter buffer sees it: a padding-only packet (livekit-server
// sends them between samples, to probe bandwidth or while muted) is a sample of its own, which the
// buffer hands out empty at once, instead of an incomplete one that holds up every sample behind
// it until it expires.
type paddingAware struct{ rtp.Depacketizer }

func (p paddingAware) IsPartitionHead(payload []byte) bool {
	return len(payload) == 0 || p.Depacketizer.IsPartitionHead(payload)
}

func (p paddingAware) IsPartitionTail(marker bool, payload []byte) bool {
	return len(payload) == 0 || p.Depacketizer.IsPartitionTail(marker, payload)
}

// run reads RTP until the track ends; its NACKs and a video track's PLIs go out meanwhile.
func (t *trackReader) run() {
	stop := make(chan struct{})
	if t.video {
		go t.plis(stop)
	}
	if t.nack {
		go t.nacks(stop)
	}
	for {
		pkt, _, err := t.track.ReadRTP()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Printf("track %s: %v", t.sid, err)
			}
			break
		}
		t.push(pkt, time.Now())
	}
	close(stop)      // what Flush finds missing can no longer come, nor a keyframe
	t.buffer.Flush() // the samples already whole still reach the file
	t.buffer.Close()
	t.sync.Close()
}

// push hands a packet received at `at` to the jitter buffer, unless it is a copy of one pushed
// before or its sample is out already.
func (t *trackReader) push(pkt *rtp.Packet, at time.Time) {
	// media-sdk leaves every packet with the padding bit out of its sample; only those without
	// payload carry no media (pion has already cut the padding off the payload)
	pkt.Padding = len(pkt.Payload) == 0
	t.mu.Lock()
	before := t.seq.highest
	fresh := t.seq.push(pkt.SequenceNumber, pkt.Padding)
	opened := t.seq.highest > before+1 // packets between were skipped (a jump in the numbering too: harmless)
	t.mu.Unlock()
	if opened && t.nack {
		select {
		case t.gap <- struct{}{}:
		default:
		}
	}
	if fresh {
		t.buffer.PushAt(pkt, at)
	}
}

// nacks asks, once a packet has gone missing, for the packets still missing: first half a
// nackInterval after the gap (a packet merely reordered has come by then), then every nackInterval
// until none is. It sleeps meanwhile: a ticker would wake the receiver ~9 times a second per video
// track for nothing (livekit-server sends Opus without NACK, so audio never runs this loop).
func (t *trackReader) nacks(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.gap:
		}
		for wait := nackInterval / 2; ; wait = nackInterval {
			timer.Reset(wait)
			select {
			case <-stop:
				return
			case <-timer.C:
			}
			t.mu.Lock()
			sns := t.seq.missing(maxNacks)
			t.mu.Unlock()
			if len(sns) == 0 {
				break
			}
			t.writeRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{SenderSSRC: t.ssrc, MediaSSRC: t.ssrc,
				Nacks: rtcp.NackPairsFromSequenceNumbers(sns)}})
		}
	}
}

// plis sends a PLI (RFC 4585 §6.3.1) to the publisher through the SFU whenever one is due.
func (t *trackReader) plis(stop <-chan struct{}) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.kick:
		case <-timer.C:
		}
		t.mu.Lock()
		now := time.Now()
		send := !t.pliDue.IsZero() && !now.Before(t.pliDue)
		if send {
			t.lastPLI, t.pliDue = now, now.Add(pliInterval) // again, unless a keyframe comes first
		}
		due := t.pliDue
		t.mu.Unlock()
		if send {
			t.rp.WritePLI(t.track.SSRC())
		}
		if !due.IsZero() {
			timer.Reset(time.Until(due))
		}
	}
}

// requestKeyframe asks the publisher for a keyframe, as soon as pliInterval allows.
func (t *trackReader) requestKeyframe() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.wantKeyframe()
}

// wantKeyframe makes a PLI due, unless one already is. Called with t.mu held.
func (t *trackReader) wantKeyframe() {
	if !t.video || !t.pliDue.IsZero() {
		return
	}
	t.pliDue = t.lastPLI.Add(pliInterval)
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// lost notes samples lost before the next one written; video is undecodable until a keyframe.
// Called with t.mu held.
func (t *trackReader) lost() {
	t.loss = true
	if t.video {
		t.decodable = false
		t.wantKeyframe()
	}
}

// onSample depacketizes one complete sample and writes it at its synchronized PTS.
func (t *trackReader) onSample(packets []jitter.ExtPacket) {
	first := packets[0]
	t.mu.Lock()
	// the buffer hands out a sample after a gap only once it has stopped waiting for the gap's packets
	if t.seq.emit(first.SequenceNumber, packets[len(packets)-1].SequenceNumber) {
		t.lost()
	}
	t.mu.Unlock()
	var sample []byte
	depack := t.codec.newDepacketizer() // per sample: a dropped sample must not leave fragments behind
	for _, p := range packets {
		b, err := depack.Unmarshal(p.Payload)
		if err != nil {
			t.markLoss()
			return
		}
		sample = append(sample, b...)
	}
	if len(sample) == 0 {
		return
	}
	t.mu.Lock()
	if !t.primed {
		t.primed = true
		t.mu.Unlock()
		t.sync.PrimeForStart(first)
		t.mu.Lock()
	}
	t.mu.Unlock()
	pts, err := t.sync.GetPTS(first)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			t.markLoss()
		}
		return
	}
	key := t.video && t.codec.keyframe(sample)
	t.mu.Lock()
	if t.video && !t.decodable && !key {
		t.mu.Unlock()
		return // undecodable without the keyframe asked for
	}
	if key {
		t.decodable, t.pliDue = true, time.Time{}
	}
	loss := t.loss
	t.loss = false
	t.mu.Unlock()
	if err := t.out.sample(t.number, pts.Nanoseconds(), key || !t.video, loss, sample); err != nil {
		log.Printf("track %s: writing a sample: %v", t.sid, err)
	}
}

// markLoss: a sample that came out whole could not be written.
func (t *trackReader) markLoss() {
	t.mu.Lock()
	t.lost()
	t.mu.Unlock()
}
