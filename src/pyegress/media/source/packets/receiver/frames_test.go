package main

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// frameTypes lists the types of the whole frames in b, in order.
func frameTypes(t *testing.T, b []byte) []uint8 {
	t.Helper()
	var types []uint8
	for len(b) > 0 {
		if len(b) < headerSize {
			t.Fatalf("%d bytes left, less than a header", len(b))
		}
		n := headerSize + int(binary.LittleEndian.Uint32(b[12:]))
		types = append(types, b[0])
		b = b[n:]
	}
	return types
}

// TestBatchedEventsWaitWithTheSamples: an active-speaker update joins the batch; an event that
// cannot wait takes the batch, in order, with it.
func TestBatchedEventsWaitWithTheSamples(t *testing.T) {
	var out bytes.Buffer
	f := newFrameWriter(&out, time.Hour)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.sample(1, 0, true, false, []byte{1})) // a track's first sample goes out at once
	if got := frameTypes(t, out.Bytes()); len(got) != 1 {
		t.Fatalf("first sample: %v written, want it alone", got)
	}
	must(f.sample(1, 20, false, false, []byte{2}))
	must(f.writeEvent(map[string]any{"event": "speakers", "identities": []string{"a"}}, false))
	if got := frameTypes(t, out.Bytes()); len(got) != 1 {
		t.Fatalf("after a batched event: %v written, want nothing more", got)
	}
	must(f.event(map[string]any{"event": "muted", "sid": "TR_a", "muted": true}))
	want := []uint8{frameSample, frameSample, frameEvent, frameEvent}
	if got := frameTypes(t, out.Bytes()); !bytes.Equal(got, want) {
		t.Fatalf("after an event: %v written, want %v", got, want)
	}
}
