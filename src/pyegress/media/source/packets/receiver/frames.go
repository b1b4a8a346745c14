package main

// The framing on the receiver's stdout, read by pyegress/media/source/packets/stream.py
// (docs/receiver.md). Every frame is a 16-byte little-endian header and a payload:
//
//	u8 type | u8 flags | u16 track | i64 pts (ns) | u32 length | payload[length]
//
// type 1: an encoded sample of track `track` at synchronized PTS `pts` (ns since the
// sync engine's session start); flags bit 0: keyframe, bit 1: samples were lost just
// before this one. type 2: an event, a JSON object (track, pts and flags are 0).

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"sync"
	"time"
)

const (
	frameSample = 1
	frameEvent  = 2

	flagKeyframe = 1 << 0
	flagLoss     = 1 << 1

	headerSize = 16
	// bufferSize: samples beyond it are written at once rather than wait for the batch's deadline.
	bufferSize = 256 << 10
	// maxGap: longer than the gap between two samples of a flowing track (audio 20 ms, video at 10 fps
	// and more 100 ms at most), so the batch's timer only fires once a track has stopped.
	maxGap = 100 * time.Millisecond
)

// frameWriter serialises frames from every track's goroutine onto one stream. Samples go out in
// batches, so the worker wakes once per batch rather than once per sample (a wakeup costs it more
// than the sample). A batch is written by the first sample that comes `delay` or more after the
// batch's first one, or by a timer `maxGap` later should none come (a muted or ended track): that
// timer never fires while samples flow, since a wakeup of the receiver's own would cost about what
// the batch saves. Events go out at once, with the samples before them, so the order stays (but for
// those written with the batch, which wait with the samples), and so does a track's first sample: the worker starts
// recording with it.
type frameWriter struct {
	mu      sync.Mutex
	out     *bufio.Writer
	delay   time.Duration
	timer   *time.Timer     // writes a batch that no sample completes
	first   time.Time       // when the batch's first sample was buffered; zero: nothing buffered
	started map[uint16]bool // track numbers that have written a sample
	err     error
}

func newFrameWriter(w io.Writer, delay time.Duration) *frameWriter {
	f := &frameWriter{out: bufio.NewWriterSize(w, bufferSize), delay: delay, started: map[uint16]bool{}}
	f.timer = time.AfterFunc(time.Hour, f.flush)
	f.timer.Stop()
	return f
}

func (f *frameWriter) write(kind, flags uint8, track uint16, pts int64, payload []byte, now bool) error {
	var h [headerSize]byte
	h[0], h[1] = kind, flags
	binary.LittleEndian.PutUint16(h[2:], track)
	binary.LittleEndian.PutUint64(h[4:], uint64(pts))
	binary.LittleEndian.PutUint32(h[12:], uint32(len(payload)))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if _, err := f.out.Write(h[:]); err != nil {
		f.err = err
		return err
	}
	if _, err := f.out.Write(payload); err != nil {
		f.err = err
		return err
	}
	if kind == frameSample && !f.started[track] {
		f.started[track] = true
		now = true
	}
	if now || f.delay <= 0 { // no delay: no batching
		return f.flushLocked()
	}
	t := time.Now()
	if f.first.IsZero() {
		f.first = t
		f.timer.Reset(f.delay + maxGap)
	} else if t.Sub(f.first) >= f.delay {
		return f.flushLocked()
	}
	return nil
}

// flush writes what is buffered (the batch's deadline; and before the receiver exits).
func (f *frameWriter) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = f.flushLocked()
}

func (f *frameWriter) flushLocked() error {
	if !f.first.IsZero() {
		f.first = time.Time{}
		f.timer.Stop()
	}
	if f.err == nil {
		f.err = f.out.Flush()
	}
	return f.err
}

// sample buffers one encoded sample.
func (f *frameWriter) sample(track uint16, pts int64, keyframe, loss bool, payload []byte) error {
	var flags uint8
	if keyframe {
		flags |= flagKeyframe
	}
	if loss {
		flags |= flagLoss
	}
	return f.write(frameSample, flags, track, pts, payload, false)
}

// event writes one event, a JSON object with at least "event", at once.
func (f *frameWriter) event(fields map[string]any) error {
	return f.writeEvent(fields, true)
}

// writeEvent writes one event at once (now) or with the batch, as a sample: the latter for news that
// can wait as long as the samples do (active speakers: livekit-server sends them every few hundred ms
// while anyone talks, and flushing for each would wake the worker that often).
func (f *frameWriter) writeEvent(fields map[string]any, now bool) error {
	payload, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	return f.write(frameEvent, 0, 0, 0, payload, now)
}
