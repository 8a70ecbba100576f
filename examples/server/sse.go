package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/callready/callready/permission"
)

// eventJSON is the data of one SSE event: the contact entry (as the
// callable listing shows it) plus what happened to it.
type eventJSON struct {
	contactJSON
	Channel  string    `json:"channel"`
	Type     string    `json:"type"`
	Revision int64     `json:"revision"`
	At       time.Time `json:"at"`
	// Replaces lists contacts that named the same person until now (two
	// identifiers joined, or the contact changed): drop their rows.
	Replaces []string `json:"replaces,omitempty"`
}

// events streams a channel's changes as Server-Sent Events. The page lists
// first, then subscribes after the listing's revision (?after=), and the
// browser resumes with Last-Event-ID after a reconnect, so no change is
// missed or repeated.
//
// Without a {channel} (GET /api/events) the stream carries every channel's
// changes: the page follows all the counts of its sidebar with it.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	ch := ""
	if r.PathValue("channel") != "" {
		var ok bool
		if ch, ok = s.channelOr404(w, r); !ok {
			return
		}
	}
	after, err := resumeRevision(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if after < 0 { // no resume point: only what happens from now on
		after = s.tracker.Revision()
	}
	// ?pending=1 adds the pending list's changes (requests.go).
	pending := r.URL.Query().Get("pending") == "1"
	sub, err := s.tracker.Subscribe(permission.SubscribeOptions{Channel: ch, After: after, Pending: pending})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	defer sub.Close()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() { // shutdown ends streams, or Shutdown would wait for them
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	// retry: how long the browser waits before reconnecting.
	if _, err := io.WriteString(w, "retry: 2000\n: stream open\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	s.metrics.subscribers.Inc()
	defer s.metrics.subscribers.Dec()

	for {
		nctx, ncancel := context.WithTimeout(ctx, s.opts.Heartbeat)
		c, err := sub.Next(nctx)
		ncancel()
		var werr error
		switch {
		case err == nil:
			werr = s.writeChange(ctx, w, c)
		case ctx.Err() != nil:
			return // client gone or server stopping
		case errors.Is(err, context.DeadlineExceeded):
			_, werr = io.WriteString(w, ": heartbeat\n\n")
		case errors.Is(err, permission.ErrLagged), errors.Is(err, permission.ErrResync):
			// The page must list again and subscribe after the new
			// listing's revision.
			writeResync(w, err.Error())
			_ = rc.Flush()
			return
		case errors.Is(err, permission.ErrClosed):
			return
		default:
			s.log.Error("event stream failed", "channel", ch, "err", err)
			writeResync(w, "storage error")
			_ = rc.Flush()
			return
		}
		if werr != nil || rc.Flush() != nil {
			return
		}
	}
}

// resumeRevision reads where a stream resumes: the browser's Last-Event-ID
// on a reconnect wins over the ?after= of the first connection; -1 when
// neither is given.
func resumeRevision(r *http.Request) (int64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("after")
	}
	if v == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad revision %q: want a non-negative integer", v)
	}
	return n, nil
}

func writeResync(w io.Writer, why string) {
	b, _ := json.Marshal(map[string]string{"reason": why})
	fmt.Fprintf(w, "event: resync\ndata: %s\n\n", b)
}

func (s *server) writeChange(ctx context.Context, w io.Writer, c permission.Change) error {
	if c.Type == permission.ChangePending || c.Type == permission.ChangePendingEnded {
		return s.writePendingChange(ctx, w, c)
	}
	e := c.Entry
	name, _, err := s.inbox.contact(ctx, e.Channel, inboxKey(e))
	if err != nil {
		return err
	}
	data, err := json.Marshal(eventJSON{
		contactJSON: toContactJSON(e, name),
		Channel:     e.Channel, Type: string(c.Type), Revision: c.Revision, At: c.At.UTC(),
		Replaces: c.Replaces,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\nid: %d\ndata: %s\n\n", c.Type, c.Revision, data)
	return err
}
