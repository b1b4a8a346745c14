package main

import "testing"

// pushAll pushes media packets and returns the ones let through.
func pushAll(s *sequence, sns ...uint16) []uint16 {
	var in []uint16
	for _, sn := range sns {
		if s.push(sn, false) {
			in = append(in, sn)
		}
	}
	return in
}

func equal(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDuplicatesAreDropped(t *testing.T) {
	var s sequence
	got := pushAll(&s, 10, 11, 13, 11, 12, 13, 12, 14)
	if want := []uint16{10, 11, 13, 12, 14}; !equal(got, want) {
		t.Fatalf("pushed %v, want %v", got, want)
	}
}

func TestPacketsOfSamplesOutAreDropped(t *testing.T) {
	var s sequence
	pushAll(&s, 10, 11, 12, 13)
	s.emit(10, 12)
	// 9 and 10..12 belong to samples out already (or given up on); 14 is new
	if got := pushAll(&s, 9, 10, 12, 14); !equal(got, []uint16{14}) {
		t.Fatalf("pushed %v, want [14]", got)
	}
}

func TestReorderWithinTheWindow(t *testing.T) {
	var s sequence
	pushAll(&s, 100)
	if got := pushAll(&s, 100+seqWindow-1, 101, 100+seqWindow-1, 101); !equal(got, []uint16{100 + seqWindow - 1, 101}) {
		t.Fatalf("pushed %v", got)
	}
}

func TestWraparound(t *testing.T) {
	var s sequence
	got := pushAll(&s, 65533, 65534, 0, 65535, 1, 65535, 0, 2)
	if want := []uint16{65533, 65534, 0, 65535, 1, 2}; !equal(got, want) {
		t.Fatalf("pushed %v, want %v", got, want)
	}
	if s.emit(65533, 65534) || s.emit(65535, 0) || s.emit(1, 1) {
		t.Fatal("a gap across the wrap where there is none")
	}
	if !s.emit(3, 3) {
		t.Fatal("2 is missing")
	}
	if got := pushAll(&s, 65535, 2, 3, 4); !equal(got, []uint16{4}) {
		t.Fatalf("pushed %v after the wrap, want [4]", got)
	}
}

func TestWindowSlidesOverManyWraps(t *testing.T) {
	var s sequence
	sn := uint16(0)
	for i := 0; i < 3*65536; i++ {
		if !s.push(sn, false) {
			t.Fatalf("packet %d (sn %d) dropped", i, sn)
		}
		if s.push(sn, false) {
			t.Fatalf("copy of packet %d (sn %d) pushed", i, sn)
		}
		if s.emit(sn, sn) {
			t.Fatalf("gap at packet %d (sn %d)", i, sn)
		}
		sn++
	}
}

func TestGapBeforeASample(t *testing.T) {
	var s sequence
	pushAll(&s, 1, 2, 3, 5, 6, 7)
	if s.emit(1, 3) {
		t.Fatal("the first sample follows no loss")
	}
	if !s.emit(5, 6) {
		t.Fatal("4 was never pushed: a gap")
	}
	if s.emit(7, 7) {
		t.Fatal("7 follows 6")
	}
}

func TestGivenUpSampleIsAGap(t *testing.T) {
	// 4..5 came, 6 never did: the buffer drops 4..5 and hands out 7 next
	var s sequence
	pushAll(&s, 1, 2, 3, 4, 5, 7)
	s.emit(1, 3)
	if !s.emit(7, 7) {
		t.Fatal("the sample of 4..6 is missing")
	}
}

func TestPaddingIsNoGap(t *testing.T) {
	var s sequence
	pushAll(&s, 1)
	s.push(2, true)
	s.push(3, true)
	pushAll(&s, 4)
	s.emit(1, 1)
	if s.emit(4, 4) {
		t.Fatal("2 and 3 are padding, nothing is missing")
	}
	// padding remembered from the window's last lap does not hide a loss: 11 was padding,
	// 11+seqWindow is lost
	s = sequence{}
	pushAll(&s, 10)
	s.push(11, true)
	for sn := uint16(12); sn <= 10+seqWindow; sn++ {
		pushAll(&s, sn)
	}
	s.emit(10, 10+seqWindow)
	pushAll(&s, 12+seqWindow)
	if !s.emit(12+seqWindow, 12+seqWindow) {
		t.Fatal("11+seqWindow is missing, not padding")
	}
}

func TestVeryLatePacketIsDropped(t *testing.T) {
	var s sequence
	pushAll(&s, 5000)
	if s.push(5000-seqWindow, false) {
		t.Fatal("a packet from before the window pushed")
	}
	if got := pushAll(&s, 5001); !equal(got, []uint16{5001}) {
		t.Fatal("the stream goes on after a stray late packet")
	}
}

func TestNumberingJump(t *testing.T) {
	var s sequence
	pushAll(&s, 30000, 30001)
	s.emit(30000, 30001)
	// 40000 packets on (backwards, as 16 bits tell it): the stream starts over after a few
	var in []uint16
	for sn := uint16(4465); sn < 4465+2*resyncAfter; sn++ {
		if s.push(sn, false) {
			in = append(in, sn)
		}
	}
	if len(in) != resyncAfter+1 || in[0] != 4465+resyncAfter-1 {
		t.Fatalf("pushed %v after the jump", in)
	}
	if !s.emit(in[0], in[0]) {
		t.Fatal("the first sample after a jump follows a loss")
	}
	if s.emit(in[1], in[1]) {
		t.Fatal("then the new numbering runs on")
	}
}

func TestMissingUntilPushedOrGivenUp(t *testing.T) {
	var s sequence
	pushAll(&s, 10, 11, 14, 16)
	if got := s.missing(10); !equal(got, []uint16{12, 13, 15}) {
		t.Fatalf("missing %v, want [12 13 15]", got)
	}
	pushAll(&s, 13)
	s.emit(10, 11)
	if got := s.missing(1); !equal(got, []uint16{12}) {
		t.Fatalf("missing %v, want [12] (oldest first, at most 1)", got)
	}
	s.emit(13, 14) // the buffer gave up on 12
	if got := s.missing(10); !equal(got, []uint16{15}) {
		t.Fatalf("missing %v, want [15]", got)
	}
	s = sequence{}
	pushAll(&s, 65534, 1)
	if got := s.missing(10); !equal(got, []uint16{65535, 0}) {
		t.Fatalf("missing %v across the wrap, want [65535 0]", got)
	}
}
