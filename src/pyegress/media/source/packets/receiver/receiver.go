package main

import (
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/livekit/server-sdk-go/v2/pkg/synchronizer"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// receiver is one room connection: it reports the room's participants and publications as
// events, subscribes to what the worker asks for and runs a trackReader per subscribed track.
type receiver struct {
	s      settings
	out    *frameWriter
	engine *synchronizer.SyncEngine
	room   *lksdk.Room

	mu      sync.Mutex
	numbers map[string]uint16       // track SID → track number, kept across re-subscriptions
	tracks  map[string]*trackReader // track SID → its reader while subscribed
	readers sync.WaitGroup
}

func newReceiver(s settings, out *frameWriter) *receiver {
	r := &receiver{s: s, out: out, numbers: map[string]uint16{}, tracks: map[string]*trackReader{}}
	// One engine for the room: it aligns every track on one session timeline, and each
	// participant's audio with their video by the RTCP sender reports (RFC 3550 §6.4.1).
	r.engine = synchronizer.NewSyncEngine(
		synchronizer.WithSyncEngineOldPacketThreshold(time.Duration(s.JitterMs)*time.Millisecond+time.Second),
		synchronizer.WithSyncEngineOnStarted(func() {
			r.event("started", map[string]any{"unix_ns": r.engine.GetStartedAt()})
		}))
	return r
}

func (r *receiver) event(name string, fields map[string]any) {
	r.writeEvent(name, fields, true)
}

// batchedEvent: an event that goes out with the next batch of samples (frameWriter.writeEvent).
func (r *receiver) batchedEvent(name string, fields map[string]any) {
	r.writeEvent(name, fields, false)
}

func (r *receiver) writeEvent(name string, fields map[string]any, now bool) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["event"] = name
	if err := r.out.writeEvent(fields, now); err != nil {
		log.Printf("writing event %s: %v", name, err)
	}
}

func (r *receiver) connect() error {
	cb := lksdk.NewRoomCallback()
	cb.OnParticipantConnected = func(rp *lksdk.RemoteParticipant) { r.participant(rp) }
	cb.OnParticipantDisconnected = func(rp *lksdk.RemoteParticipant) {
		r.event("participant_left", map[string]any{"identity": rp.Identity(), "sid": rp.SID()})
	}
	cb.OnTrackPublished = func(pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) { r.published(pub, rp) }
	cb.OnTrackUnpublished = func(pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
		r.event("unpublished", map[string]any{"sid": pub.SID()})
	}
	cb.OnTrackSubscribed = r.subscribed
	cb.OnTrackUnsubscribed = func(track *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
		r.engine.RemoveTrack(track.ID())
	}
	cb.OnTrackSubscriptionFailed = func(sid string, rp *lksdk.RemoteParticipant) {
		r.event("error", map[string]any{"sid": sid, "error": "subscription failed"})
	}
	cb.OnTrackMuted = func(pub lksdk.TrackPublication, p lksdk.Participant) {
		r.event("muted", map[string]any{"sid": pub.SID(), "muted": true})
	}
	cb.OnTrackUnmuted = func(pub lksdk.TrackPublication, p lksdk.Participant) {
		r.event("muted", map[string]any{"sid": pub.SID(), "muted": false})
	}
	cb.OnActiveSpeakersChanged = func(ps []lksdk.Participant) {
		ids := make([]string, 0, len(ps))
		for _, p := range ps {
			ids = append(ids, p.Identity())
		}
		r.batchedEvent("speakers", map[string]any{"identities": ids})
	}
	// UpdateLayout reaches a recorder as its own metadata (livekit pkg/service/egress.go).
	cb.OnMetadataChanged = func(old string, p lksdk.Participant) {
		if _, local := p.(*lksdk.LocalParticipant); local {
			r.event("metadata", map[string]any{"metadata": p.Metadata()})
		}
	}
	cb.OnReconnecting = func() { r.event("reconnecting", nil) }
	cb.OnReconnected = func() { r.event("reconnected", nil) }
	cb.OnDisconnectedWithReason = func(reason lksdk.DisconnectionReason) {
		fields := map[string]any{"reason": string(reason)}
		r.mu.Lock()
		if r.room != nil {
			fields["code"] = int(r.room.DisconnectReason()) // livekit_models.proto DisconnectReason
		}
		r.mu.Unlock()
		r.event("disconnected", fields)
	}

	room, err := lksdk.ConnectToRoomWithToken(r.s.URL, r.s.Token, cb, connectOptions(r.s)...)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.room = room
	r.mu.Unlock()
	r.event("connected", map[string]any{"room_name": room.Name()})
	go func() { r.event("room", map[string]any{"sid": room.SID()}) }() // SID can take a moment
	for _, rp := range room.GetRemoteParticipants() {
		r.participant(rp)
	}
	return nil
}

// connectOptions: subscriptions only on request and, for an egress that receives no video, none of
// the SDK's default RTP interceptors. Those send TWCC feedback and NACKs (the SFU sizes and repairs
// video with them; its Opus is sent without NACK) and RTCP receiver reports (statistics), and cost
// about a third of the receiver's CPU for an Opus track: a wakeup or more per packet and several
// tickers (docs/receiver.md). RTCP from the SFU still reaches the sync engine (pub.OnRTCP).
func connectOptions(s settings) []lksdk.ConnectOption {
	opts := []lksdk.ConnectOption{lksdk.WithAutoSubscribe(false)}
	if s.AudioOnly {
		opts = append(opts, lksdk.WithInterceptors([]interceptor.Factory{}), lksdk.WithIncludeDefaultInterceptors(false))
	}
	return opts
}

// participant reports a participant and the tracks it already publishes.
func (r *receiver) participant(rp *lksdk.RemoteParticipant) {
	r.event("participant", map[string]any{"identity": rp.Identity(), "sid": rp.SID(), "name": rp.Name(),
		"kind": int(rp.Kind())})
	for _, tp := range rp.TrackPublications() {
		if pub, ok := tp.(*lksdk.RemoteTrackPublication); ok {
			r.published(pub, rp)
		}
	}
}

func (r *receiver) published(pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
	info := pub.TrackInfo()
	fields := map[string]any{"sid": pub.SID(), "kind": string(pub.Kind()), "source": int(pub.Source()),
		"mime": pub.MimeType(), "muted": pub.IsMuted(), "identity": rp.Identity(), "participant_sid": rp.SID(),
		"participant_kind": int(rp.Kind())}
	if info != nil {
		fields["width"], fields["height"] = info.Width, info.Height
	}
	r.event("published", fields)
}

func (r *receiver) subscribed(track *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
	c, err := codecFor(track.Codec().MimeType)
	if err != nil {
		r.event("error", map[string]any{"sid": pub.SID(), "error": err.Error()})
		_ = pub.SetSubscribed(false)
		return
	}
	r.mu.Lock()
	number, ok := r.numbers[pub.SID()]
	if !ok {
		number = uint16(len(r.numbers) + 1)
		r.numbers[pub.SID()] = number
	}
	r.mu.Unlock()
	ts := r.engine.AddTrack(track, rp.SID())
	pub.OnRTCP(r.engine.OnRTCP)
	r.event("track", map[string]any{"track": number, "sid": pub.SID(), "codec": c.name,
		"clock_rate": track.Codec().ClockRate, "channels": track.Codec().Channels, "identity": rp.Identity()})
	t := newTrackReader(number, pub.SID(), c, track, rp, ts, r.out, time.Duration(r.s.JitterMs)*time.Millisecond,
		r.writeRTCP)
	r.mu.Lock()
	r.tracks[pub.SID()] = t
	r.mu.Unlock()
	r.readers.Add(1)
	go func() {
		defer r.readers.Done()
		t.run()
		r.mu.Lock()
		if r.tracks[pub.SID()] == t {
			delete(r.tracks, pub.SID())
		}
		r.mu.Unlock()
		r.event("track_ended", map[string]any{"track": number, "sid": pub.SID()})
	}()
}

// writeRTCP sends RTCP on the subscriber connection, looked up each time (the SDK replaces it when
// it reconnects). Errors are ignored, as the SDK's PLIs do: a closed connection ends the tracks.
func (r *receiver) writeRTCP(pkts []rtcp.Packet) {
	r.mu.Lock()
	room := r.room
	r.mu.Unlock()
	if pc := room.LocalParticipant.GetSubscriberPeerConnection(); pc != nil {
		_ = pc.WriteRTCP(pkts)
	}
}

// publication finds a remote publication by track SID.
func (r *receiver) publication(sid string) (*lksdk.RemoteTrackPublication, error) {
	r.mu.Lock()
	room := r.room
	r.mu.Unlock()
	for _, rp := range room.GetRemoteParticipants() {
		for _, tp := range rp.TrackPublications() {
			if pub, ok := tp.(*lksdk.RemoteTrackPublication); ok && pub.SID() == sid {
				return pub, nil
			}
		}
	}
	return nil, fmt.Errorf("no track %s", sid)
}

func (r *receiver) handle(c command) error {
	pub, err := r.publication(c.SID)
	if err != nil {
		return err
	}
	switch c.Cmd {
	case "subscribe":
		r.setDimensions(pub, c)
		return pub.SetSubscribed(true)
	case "unsubscribe":
		return pub.SetSubscribed(false)
	case "dimensions":
		r.setDimensions(pub, c)
	case "keyframe":
		r.mu.Lock()
		t := r.tracks[c.SID]
		r.mu.Unlock()
		if t != nil && t.video {
			t.requestKeyframe()
		}
	default:
		return fmt.Errorf("unknown command %q", c.Cmd)
	}
	return nil
}

// setDimensions asks the SFU for the simulcast layer that fits width x height, or the highest.
func (r *receiver) setDimensions(pub *lksdk.RemoteTrackPublication, c command) {
	if pub.Kind() != lksdk.TrackKindVideo {
		return
	}
	if c.Width > 0 && c.Height > 0 {
		pub.SetVideoDimensions(c.Width, c.Height)
	} else {
		_ = pub.SetVideoQuality(livekit.VideoQuality_HIGH)
	}
}

// close leaves the room and waits (a while) for every track's last samples to be written.
func (r *receiver) close() {
	r.mu.Lock()
	room := r.room
	r.mu.Unlock()
	if room != nil {
		room.Disconnect()
	}
	done := make(chan struct{})
	go func() { r.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		log.Printf("tracks did not end within 5 s")
	}
	r.engine.End()
}
