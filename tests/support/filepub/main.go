// Command filepub joins a LiveKit room and publishes encoded media files unchanged, with the
// server SDK's own file readers (lksdk.NewLocalReaderTrack): VP8/VP9 in IVF, H.264 Annex B
// (.h264), Opus in Ogg. pyegress's tests use it to check that a track egress writes the
// publisher's bitstream byte for byte (tests/test_passthrough_bitstream_e2e.py).
//
//	filepub -url ws://127.0.0.1:7880 [-video x.ivf|x.h264] [-audio x.ogg] [-fps 30] [-loop]
//
// The access token is the first line on stdin (never in argv, where ps shows it). Once every
// track is published it prints "track video <sid>" / "track audio <sid>" lines, then, once each
// track's first sample is being sent, "start video <unix ns>" / "start audio <unix ns>", and then
// "ready" on stdout; it leaves the room and exits on SIGTERM/SIGINT or when stdin closes.
//
// The SDK sends every later sample of a track at its start plus the durations before it, and
// pion's sender reports tie RTP time to that send time; so the start times say when each file's
// content plays, and their difference is the audio-minus-video offset this publisher itself sends
// (bench/av_sync.py).
//
// What the SDK sends, per file type (readersampleprovider.go):
//   - IVF: one sample per IVF frame. The frame duration is -fps (the SDK's option; it replaces
//     the IVF timestamps, which a loop would send backwards).
//   - H.264: one sample per NAL unit; SEI NALs are dropped by the SDK, SPS/PPS are held by
//     pion's payloader and sent as a STAP-A ahead of the next slice, AUD and filler NALs are
//     dropped by pion. Slices are 33 ms apart whatever -fps says: the SDK's frame-duration
//     option would also give SPS and PPS a frame's time each, shifting every keyframe.
//     The stream must have one slice per picture and no B-frames.
//   - Ogg: one sample per Opus packet, its duration read from the packet's TOC.
//
// -loop starts a file over at its end: the bytes after the file header are read again (IVF:
// after its 32-byte header; H.264: the whole file; Ogg: after the OpusHead and OpusTags
// pages), so the SDK's reader sees one endless stream.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/livekit/protocol/livekit"
	protoLogger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
)

func main() {
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("filepub: ")
	url := flag.String("url", "", "livekit-server URL (ws://...)")
	video := flag.String("video", "", "video file: .ivf (VP8/VP9) or .h264 (Annex B)")
	audio := flag.String("audio", "", "audio file: .ogg (Opus)")
	fps := flag.Float64("fps", 30, "IVF frame rate (H.264 is sent at the SDK's 33 ms per frame)")
	width := flag.Int("width", 640, "video width announced to the server")
	height := flag.Int("height", 360, "video height announced to the server")
	loop := flag.Bool("loop", false, "start each file over at its end")
	flag.Parse()
	if *url == "" || (*video == "" && *audio == "") || *fps <= 0 {
		fmt.Fprintln(os.Stderr, "usage: filepub -url URL [-video FILE] [-audio FILE] [-fps N] [-loop]  (token on stdin)")
		os.Exit(2)
	}
	if l, err := protoLogger.NewZapLogger(&protoLogger.Config{Level: "warn"}); err == nil {
		lksdk.SetLogger(l)
	}

	in := bufio.NewReader(os.Stdin)
	token, err := in.ReadString('\n')
	token = strings.TrimSpace(token)
	if token == "" {
		log.Fatalf("no token on stdin (%v)", err)
	}

	room, err := lksdk.ConnectToRoomWithToken(*url, token, lksdk.NewRoomCallback(), lksdk.WithAutoSubscribe(false))
	if err != nil {
		log.Fatalf("joining the room: %v", err)
	}
	defer room.Disconnect()

	type pub struct{ kind, path string }
	var pubs []pub
	started := map[string]*looper{}
	if *video != "" {
		pubs = append(pubs, pub{"video", *video})
	}
	if *audio != "" {
		pubs = append(pubs, pub{"audio", *audio})
	}
	for _, p := range pubs {
		track, reader, err := fileTrack(p.path, *fps, *loop)
		if err != nil {
			log.Fatalf("%s: %v", p.path, err)
		}
		started[p.kind] = reader
		opts := &lksdk.TrackPublicationOptions{Name: filepath.Base(p.path), DisableDTX: true}
		if p.kind == "video" {
			if track.Kind() != webrtc.RTPCodecTypeVideo {
				log.Fatalf("%s is not a video file", p.path)
			}
			opts.Source, opts.VideoWidth, opts.VideoHeight = livekit.TrackSource_CAMERA, *width, *height
		} else {
			if track.Kind() != webrtc.RTPCodecTypeAudio {
				log.Fatalf("%s is not an audio file", p.path)
			}
			opts.Source = livekit.TrackSource_MICROPHONE
		}
		// PublishTrack sends one layer (no simulcast) unless WithSimulcastTrack is used.
		publication, err := room.LocalParticipant.PublishTrack(track, opts)
		if err != nil {
			log.Fatalf("publishing %s: %v", p.path, err)
		}
		fmt.Printf("track %s %s\n", p.kind, publication.SID())
	}
	for _, p := range pubs {
		select {
		case <-started[p.kind].started:
			fmt.Printf("start %s %d\n", p.kind, started[p.kind].start.UnixNano())
		case <-time.After(20 * time.Second):
			log.Fatalf("%s: no sample sent within 20 s of publishing", p.path)
		}
	}
	fmt.Println("ready")

	done := make(chan struct{})
	go func() { // stdin closed: the parent is gone
		_, _ = io.Copy(io.Discard, in)
		close(done)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-done:
	}
}

// fileTrack opens path the way lksdk.NewLocalFileTrack does (codec from the extension and the
// IVF FourCC), looping it if asked; the looper it reads through tells when sending began.
func fileTrack(path string, fps float64, loop bool) (*lksdk.LocalTrack, *looper, error) {
	var mime string
	var restart func([]byte) (int64, error) // where the samples start (and a loop starts over)
	switch strings.ToLower(filepath.Ext(path)) {
	case ".ivf":
		mime, restart = "", ivfBody
	case ".h264":
		mime, restart = webrtc.MimeTypeH264, func([]byte) (int64, error) { return 0, nil }
	case ".ogg":
		mime, restart = webrtc.MimeTypeOpus, oggBody
	default:
		return nil, nil, fmt.Errorf("unsupported file type (.ivf, .h264, .ogg)")
	}
	var opts []lksdk.ReaderSampleProviderOption
	if mime == "" { // IVF: the SDK's timestamps from the file would go backwards at a loop
		opts = append(opts, lksdk.ReaderTrackWithFrameDuration(time.Duration(float64(time.Second)/fps)))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if mime == "" {
		if len(data) < 12 {
			return nil, nil, errors.New("not an IVF file")
		}
		switch string(data[8:11]) {
		case "VP8":
			mime = webrtc.MimeTypeVP8
		case "VP9":
			mime = webrtc.MimeTypeVP9
		default:
			return nil, nil, fmt.Errorf("IVF FourCC %q: VP8 or VP9 only", data[8:12])
		}
	}
	body, err := restart(data)
	if err != nil {
		return nil, nil, err
	}
	reader := &looper{data: data, body: int(body), loop: loop, started: make(chan struct{})}
	track, err := lksdk.NewLocalReaderTrack(reader, mime, opts...)
	return track, reader, err
}

// ivfBody: the offset of the first frame, after the IVF header (its length is at byte 6).
func ivfBody(data []byte) (int64, error) {
	if len(data) < 32 || string(data[:4]) != "DKIF" {
		return 0, errors.New("not an IVF file")
	}
	return int64(binary.LittleEndian.Uint16(data[6:8])), nil
}

// oggBody: the offset of the third Ogg page, the first after OpusHead and OpusTags (RFC 7845 §3;
// the SDK's reader, too, takes each header to be one page).
func oggBody(data []byte) (int64, error) {
	off := 0
	for page := 0; page < 2; page++ {
		if len(data) < off+27 || string(data[off:off+4]) != "OggS" {
			return 0, errors.New("not an Ogg file")
		}
		segments := int(data[off+26])
		if len(data) < off+27+segments {
			return 0, errors.New("truncated Ogg page")
		}
		size := 27 + segments
		for _, s := range data[off+27 : off+27+segments] {
			size += int(s)
		}
		off += size
	}
	return int64(off), nil
}

// looper reads data, then data[body:] over and over if loop (else to the end). The SDK reads
// the file's header when the track is bound and the first sample right after its writer took
// the time it paces from: start, when started closes, is the first read past the header.
type looper struct {
	data    []byte
	body    int
	pos     int
	loop    bool
	start   time.Time
	started chan struct{}
}

func (l *looper) Read(p []byte) (int, error) {
	if l.pos >= len(l.data) {
		if !l.loop {
			return 0, io.EOF
		}
		l.pos = l.body
	}
	n := copy(p, l.data[l.pos:])
	l.pos += n
	if l.pos > l.body && l.start.IsZero() {
		l.start = time.Now()
		close(l.started)
	}
	return n, nil
}

func (l *looper) Close() error { return nil }
