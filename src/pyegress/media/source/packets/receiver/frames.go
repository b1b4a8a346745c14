package main

// The framing on the receiver's stdout, read by pyegress/media/source/packets.py
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
)

const (
	frameSample = 1
	frameEvent  = 2

	flagKeyframe = 1 << 0
	flagLoss     = 1 << 1

	headerSize = 16
)

// frameWriter serialises frames from every track's goroutine onto one stream.
type frameWriter struct {
	mu  sync.Mutex
	out *bufio.Writer
	err error
}

func newFrameWriter(w io.Writer) *frameWriter {
	return &frameWriter{out: bufio.NewWriterSize(w, 1<<16)}
}

func (f *frameWriter) write(kind, flags uint8, track uint16, pts int64, payload []byte) error {
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
	// Flushed per frame: the worker composes live, a frame must not wait for the next one.
	f.err = f.out.Flush()
	return f.err
}

// sample writes one encoded sample.
func (f *frameWriter) sample(track uint16, pts int64, keyframe, loss bool, payload []byte) error {
	var flags uint8
	if keyframe {
		flags |= flagKeyframe
	}
	if loss {
		flags |= flagLoss
	}
	return f.write(frameSample, flags, track, pts, payload)
}

// event writes one event: a JSON object with at least "event".
func (f *frameWriter) event(fields map[string]any) error {
	payload, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	return f.write(frameEvent, 0, 0, 0, payload)
}
