// Command receiver joins a LiveKit room for one pyegress egress and writes the
// subscribed tracks' encoded samples, with PTS from LiveKit's sync engine, to
// stdout (frames.go). pyegress's worker starts it, sends its settings as the
// first JSON line on stdin and then commands, one JSON line each; the receiver
// leaves the room and exits when stdin closes, so it never outlives its worker.
// The protocol is described in docs/receiver.md.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"runtime"
	"syscall"
	"time"

	protoLogger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

// settings is the first line on stdin.
type settings struct {
	URL   string `json:"url"`
	Token string `json:"token"`
	// JitterMs: how long a sample may wait for its missing packets (NACK retransmissions), ms.
	JitterMs int `json:"jitter_ms"`
	// FlushMs: how long a sample may wait on stdout for the others of its batch, ms (frames.go).
	FlushMs int `json:"flush_ms"`
	// AudioOnly: the egress subscribes to audio tracks only (connectOptions).
	AudioOnly bool `json:"audio_only"`
	// TimerSlackMs: how late the kernel may fire the receiver's timers once it is in the room, ms
	// (setTimerSlack; 0: the kernel's default, 50 µs).
	TimerSlackMs int `json:"timer_slack_ms"`
}

// defaultFlushMs: a composite decodes for its playout, which allows for this and much more.
const defaultFlushMs = 20

// command is every later line on stdin.
type command struct {
	Cmd string `json:"cmd"` // "subscribe", "unsubscribe", "dimensions", "keyframe"
	SID string `json:"sid"`
	// Width, Height: the size the worker shows the track at, so the SFU picks the simulcast layer
	// that fits (0: the highest layer).
	Width  uint32 `json:"width"`
	Height uint32 `json:"height"`
}

func main() {
	// One P: the receiver's work is one wakeup per packet, handed between a few goroutines; with more
	// Ps each handoff also wakes an idle thread, which costs more than the work (GOMAXPROCS overrides).
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("receiver: ")
	// Frames go to a private copy of stdout; fd 1 then points at stderr, so nothing a library
	// prints can ever corrupt the frame stream.
	framesFd, err := syscall.Dup(1)
	if err != nil {
		log.Fatalf("dup stdout: %v", err)
	}
	if err := syscall.Dup2(2, 1); err != nil {
		log.Fatalf("redirect stdout: %v", err)
	}
	// The SDK's and pion's own log at warning and above: their info lines (ICE and signalling
	// states) would fill every egress's log.
	if l, err := protoLogger.NewZapLogger(&protoLogger.Config{Level: "warn"}); err == nil {
		lksdk.SetLogger(l)
	}

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<16), 1<<20)
	if !in.Scan() {
		log.Fatal("no settings on stdin")
	}
	var s settings
	if err := json.Unmarshal(in.Bytes(), &s); err != nil {
		log.Fatalf("bad settings: %v", err)
	}
	if s.JitterMs <= 0 {
		s.JitterMs = 500
	}
	if s.FlushMs <= 0 {
		s.FlushMs = defaultFlushMs
	}
	out := newFrameWriter(os.NewFile(uintptr(framesFd), "frames"), time.Duration(s.FlushMs)*time.Millisecond)

	r := newReceiver(s, out)
	if err := r.connect(); err != nil {
		_ = out.event(map[string]any{"event": "failed", "error": err.Error()})
		os.Exit(2)
	}
	if s.TimerSlackMs > 0 {
		if err := setTimerSlack(time.Duration(s.TimerSlackMs) * time.Millisecond); err != nil {
			log.Printf("timer slack: %v", err)
		}
	}
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			log.Printf("bad command: %v", err)
			continue
		}
		if err := r.handle(c); err != nil {
			log.Printf("%s %s: %v", c.Cmd, c.SID, err)
			_ = out.event(map[string]any{"event": "error", "sid": c.SID, "error": fmt.Sprint(err)})
		}
	}
	// stdin closed: the worker is finishing, or gone.
	r.close()
	out.flush()
}

// setTimerSlack lets the kernel fire the timers of every thread of the receiver up to d late
// (prctl(2) PR_SET_TIMERSLACK; threads started later inherit it). Packets still wake the receiver at
// once; what waits is sysmon's 10 ms poll and the runtime's timers (RTCP reports, NACKs, batch
// flushes), so fewer of them take a wakeup of their own. Set after joining, so that ICE and DTLS
// retransmissions keep their pace. It needs a build without cgo (binary.BUILD_ENV): with cgo Go
// cannot run a system call on every thread.
func setTimerSlack(d time.Duration) error {
	if _, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, syscall.PR_SET_TIMERSLACK,
		uintptr(d.Nanoseconds()), 0); errno != 0 {
		return errno
	}
	return nil
}
