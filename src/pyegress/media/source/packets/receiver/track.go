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
	"github.com/pion/webrtc/v4"
)

const (
	// keyframeRetry: how often a keyframe is asked for until one arrives (subscribe, loss).
	keyframeRetry = 500 * time.Millisecond
)

// trackReader turns one subscribed track's RTP into synchronized samples on the frame stream:
// RTP → LiveKit's jitter buffer (reorders, waits for NACKed packets, hands out whole
// samples) → depacketizer → the sync engine's PTS for the sample's RTP timestamp.
type trackReader struct {
	number uint16
	sid    string
	codec  codec
	video  bool
	track  *webrtc.TrackRemote
	rp     *lksdk.RemoteParticipant
	sync   synchronizer.TrackSync
	out    *frameWriter
	buffer *jitter.Buffer

	mu           sync.Mutex
	primed       bool
	haveKeyframe bool // a video track writes nothing before its first keyframe
	loss         bool // samples were lost since the last one written
	lostSoFar    uint64
	wantKey      time.Time // when a keyframe was last asked for, zero: none outstanding
}

func newTrackReader(number uint16, sid string, c codec, track *webrtc.TrackRemote, rp *lksdk.RemoteParticipant,
	ts synchronizer.TrackSync, out *frameWriter, latency time.Duration) *trackReader {
	t := &trackReader{number: number, sid: sid, codec: c, video: track.Kind() == webrtc.RTPCodecTypeVideo,
		track: track, rp: rp, sync: ts, out: out}
	t.buffer = jitter.NewBuffer(c.newDepacketizer(), latency, t.onSample, jitter.WithPacketLossHandler(t.onLoss))
	return t
}

// run reads RTP until the track ends, asking for keyframes while none has come.
func (t *trackReader) run() {
	stop := make(chan struct{})
	defer close(stop)
	if t.video {
		t.requestKeyframe()
		go t.keyframeRetries(stop)
	}
	for {
		pkt, _, err := t.track.ReadRTP()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Printf("track %s: %v", t.sid, err)
			}
			break
		}
		t.buffer.PushAt(pkt, time.Now())
	}
	t.buffer.Flush() // the samples already whole still reach the file
	t.buffer.Close()
	t.sync.Close()
}

func (t *trackReader) keyframeRetries(stop <-chan struct{}) {
	tick := time.NewTicker(keyframeRetry)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			t.mu.Lock()
			waiting := !t.wantKey.IsZero() && time.Since(t.wantKey) >= keyframeRetry
			t.mu.Unlock()
			if waiting {
				t.requestKeyframe()
			}
		}
	}
}

// requestKeyframe sends a PLI (RFC 4585 §6.3.1) to the publisher through the SFU.
func (t *trackReader) requestKeyframe() {
	t.mu.Lock()
	t.wantKey = time.Now()
	t.mu.Unlock()
	t.rp.WritePLI(t.track.SSRC())
}

// onLoss: the jitter buffer gave up on packets (never came, or a sample stayed incomplete).
func (t *trackReader) onLoss(lost, dropped uint64) {
	t.mu.Lock()
	grew := lost+dropped > t.lostSoFar
	t.lostSoFar = lost + dropped
	if grew {
		t.loss = true
	}
	t.mu.Unlock()
	if grew {
		t.keyframeAfterLoss()
	}
}

// onSample depacketizes one complete sample and writes it at its synchronized PTS.
func (t *trackReader) onSample(packets []jitter.ExtPacket) {
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
	first := packets[0]
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
	if t.video && !t.haveKeyframe && !key {
		t.mu.Unlock()
		return // undecodable without the keyframe asked for
	}
	if key {
		t.haveKeyframe = true
		t.wantKey = time.Time{}
	}
	loss := t.loss
	t.loss = false
	t.mu.Unlock()
	if err := t.out.sample(t.number, pts.Nanoseconds(), key || !t.video, loss, sample); err != nil {
		log.Printf("track %s: writing a sample: %v", t.sid, err)
	}
}

func (t *trackReader) markLoss() {
	t.mu.Lock()
	t.loss = true
	t.mu.Unlock()
	t.keyframeAfterLoss()
}

// keyframeAfterLoss asks for a keyframe unless one is already asked for: under sustained loss
// the retries (every keyframeRetry) ask again, not every lost packet.
func (t *trackReader) keyframeAfterLoss() {
	t.mu.Lock()
	outstanding := !t.wantKey.IsZero()
	t.mu.Unlock()
	if t.video && !outstanding {
		t.requestKeyframe()
	}
}
