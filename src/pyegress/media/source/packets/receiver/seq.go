package main

// seqWindow: how many sequence numbers below the newest packet the duplicate check remembers; far
// more than a 500 ms jitter buffer holds at any video bitrate.
const seqWindow = 4096

// resyncAfter: consecutive packets from outside the window that mean the stream's numbering jumped
// (rather than a stray, very late packet).
const resyncAfter = 8

// sequence follows one track's RTP sequence numbers on both sides of media-sdk's jitter buffer.
// Going in (push), it drops copies and packets older than what already came out: the buffer has no
// duplicate check, so a copy of a retransmitted packet would be queued beside its original or
// counted as lost. In between (missing), it lists the packets still to ask for again. Coming out
// (emit), it tells whether packets before a sample are missing: the buffer reports such a loss only
// after it has handed out every sample queued behind the gap.
// Numbers are extended to int64 (RFC 3550 §A.1), so wraparound needs no special case.
type sequence struct {
	started bool
	highest int64                  // newest packet pushed
	seen    [seqWindow / 64]uint64 // bit n%seqWindow: packet n was pushed (n > highest-seqWindow)
	padding [seqWindow / 64]uint64 // bit n%seqWindow: packet n was padding only, in no sample
	far     int                    // consecutive packets outside the window

	emittedAny bool
	emitted    int64 // last packet of the last sample out (before one: the first packet pushed)
	jumped     bool  // the numbering jumped: the next sample follows a loss
}

// extend places a 16-bit sequence number within ±32768 of the newest packet.
func (s *sequence) extend(sn uint16) int64 {
	return s.highest + int64(int16(sn-uint16(s.highest)))
}

func bit(set *[seqWindow / 64]uint64, n int64) bool {
	i := uint64(n) % seqWindow
	return set[i/64]&(1<<(i%64)) != 0
}

func setBit(set *[seqWindow / 64]uint64, n int64, on bool) {
	i := uint64(n) % seqWindow
	if on {
		set[i/64] |= 1 << (i % 64)
	} else {
		set[i/64] &^= 1 << (i % 64)
	}
}

// push tells whether a packet goes to the jitter buffer: not if it is a copy of one pushed before,
// or older than the last sample out (its sample is out already, or was given up on).
func (s *sequence) push(sn uint16, paddingOnly bool) bool {
	if !s.started {
		s.started, s.highest, s.emitted = true, int64(sn), int64(sn)
		s.mark(s.highest, paddingOnly)
		return true
	}
	n := s.extend(sn)
	if n <= s.highest-seqWindow {
		if s.far++; s.far < resyncAfter {
			return false
		}
		// a new numbering: forget the old one, the next sample out is after a loss
		*s = sequence{started: true, highest: int64(sn), emitted: int64(sn), jumped: true}
		s.mark(s.highest, paddingOnly)
		return true
	}
	s.far = 0
	if s.emittedAny && n <= s.emitted {
		return false
	}
	if n > s.highest {
		if n-s.highest >= seqWindow {
			s.seen, s.padding = [seqWindow / 64]uint64{}, [seqWindow / 64]uint64{}
		} else {
			for m := s.highest + 1; m < n; m++ { // not pushed (yet): forget packet m-seqWindow
				setBit(&s.seen, m, false)
				setBit(&s.padding, m, false)
			}
		}
		s.highest = n
	} else if bit(&s.seen, n) {
		return false
	}
	s.mark(n, paddingOnly)
	return true
}

// missing lists (oldest first, at most limit) the packets not pushed between the last sample out
// and the newest packet: the ones a NACK may still bring back in time.
func (s *sequence) missing(limit int) []uint16 {
	var sns []uint16
	for n := max(s.emitted, s.highest-seqWindow) + 1; n < s.highest && len(sns) < limit; n++ {
		if !bit(&s.seen, n) {
			sns = append(sns, uint16(n))
		}
	}
	return sns
}

func (s *sequence) mark(n int64, paddingOnly bool) {
	setBit(&s.seen, n, true)
	setBit(&s.padding, n, paddingOnly)
}

// emit records a sample coming out of the jitter buffer, first and last its first and last packets,
// and tells whether packets before it are missing (padding the SFU sent between samples is not).
func (s *sequence) emit(first, last uint16) (gap bool) {
	f, l := s.extend(first), s.extend(last)
	switch {
	case s.jumped:
		gap, s.jumped = true, false
	case !s.emittedAny:
	case f <= s.emitted:
		gap = true // out of order: only a jump in the numbering does that
	default:
		for n := s.emitted + 1; n < f; n++ {
			if n <= s.highest-seqWindow || !bit(&s.padding, n) {
				gap = true
				break
			}
		}
	}
	s.emittedAny, s.emitted = true, l
	return gap
}
