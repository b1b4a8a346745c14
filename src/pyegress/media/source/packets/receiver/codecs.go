package main

// Per-codec depacketizing (RTP payloads → one encoded sample) and keyframe tests.
// Samples come out as the containers take them: VP8/VP9 frames, H.264 in Annex B
// (start codes, SPS/PPS in-band as the publisher sends them), AV1 as low-overhead
// OBUs with sizes (AV1 RTP payload spec §7), Opus packets (RFC 7587).

import (
	"fmt"
	"strings"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// codec knows one RTP payload format.
type codec struct {
	name string // "vp8", "vp9", "h264", "av1", "opus"
	// newDepacketizer gives a fresh depacketizer: H.264 and AV1 keep state across a sample's packets.
	newDepacketizer func() rtp.Depacketizer
	// keyframe tells whether a depacketized sample starts a new coded video sequence.
	keyframe func(sample []byte) bool
}

// codecFor maps a track's MIME type (e.g. "video/VP8") to its codec.
func codecFor(mime string) (codec, error) {
	switch strings.ToLower(mime) {
	case "video/vp8":
		return codec{"vp8", func() rtp.Depacketizer { return &codecs.VP8Packet{} }, vp8Keyframe}, nil
	case "video/vp9":
		return codec{"vp9", func() rtp.Depacketizer { return &codecs.VP9Packet{} }, vp9Keyframe}, nil
	case "video/h264":
		return codec{"h264", func() rtp.Depacketizer { return &codecs.H264Packet{} }, h264Keyframe}, nil
	case "video/av1":
		return codec{"av1", func() rtp.Depacketizer { return &codecs.AV1Depacketizer{} }, av1Keyframe}, nil
	case "audio/opus":
		return codec{"opus", func() rtp.Depacketizer { return &codecs.OpusPacket{} }, func([]byte) bool { return true }}, nil
	}
	return codec{}, fmt.Errorf("unsupported codec %s", mime)
}

// vp8Keyframe: the frame tag's P bit is 0 on a key frame (RFC 6386 §9.1).
func vp8Keyframe(b []byte) bool { return len(b) > 0 && b[0]&0x01 == 0 }

// vp9Keyframe reads the uncompressed header (VP9 bitstream spec §6.2): profile bits,
// show_existing_frame, then frame_type 0 = key frame.
func vp9Keyframe(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	h := b[0]
	if h>>6 != 0b10 { // frame_marker
		return false
	}
	profile := (h>>5)&1 | ((h>>4)&1)<<1
	bit := 4 // bits from the MSB: frame_marker 0-1, profile 2-3
	if profile == 3 {
		bit++ // reserved_zero
	}
	if (h>>(7-bit))&1 == 1 { // show_existing_frame
		return false
	}
	bit++
	return (h>>(7-bit))&1 == 0
}

// h264Keyframe: an IDR slice (NAL type 5) in the Annex B sample (ITU-T H.264 §7.4.1.2).
func h264Keyframe(b []byte) bool {
	for i := 0; i+3 < len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if b[i+3]&0x1f == 5 {
				return true
			}
			i += 2
		}
	}
	return false
}

// av1Keyframe: a sequence header OBU (type 1) starts every AV1 key frame a WebRTC sender emits.
func av1Keyframe(b []byte) bool {
	return len(b) > 0 && (b[0]>>3)&0x0f == 1
}
