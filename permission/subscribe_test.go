package permission

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store/memory"
)

func next(t *testing.T, s *Subscription) Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := s.Next(ctx)
	require.NoError(t, err)
	return c
}

// pendingChange reports whether a live change is ready, without waiting
// (replays need a live context: drain them with next first).
func pendingChange(s *Subscription) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Next(ctx)
	return err == nil
}

func TestSubscribeLive(t *testing.T) {
	f := newFixture(t, Config{})
	sub, err := f.tr.Subscribe(SubscribeOptions{})
	require.NoError(t, err)
	defer sub.Close()
	f.record(grant("u1", t0))
	f.record(Event{Type: EventGrant, Channel: "other", Contact: "x", At: t0})
	f.record(revoke("u1", t0.Add(time.Hour), RevokeRejected))
	c1, c2, c3 := next(t, sub), next(t, sub), next(t, sub)
	assert.Equal(t, []ChangeType{Granted, Granted, Revoked}, []ChangeType{c1.Type, c2.Type, c3.Type})
	assert.Less(t, c1.Revision, c2.Revision)
	assert.Less(t, c2.Revision, c3.Revision)
	assert.False(t, pendingChange(sub))
}

func TestSubscribeChannelFilterAndResume(t *testing.T) {
	f := newFixture(t, Config{})
	f.record(grant("u1", t0))                                                 // rev 1
	f.record(Event{Type: EventGrant, Channel: "other", Contact: "x", At: t0}) // rev 2
	page, err := f.tr.Eligible(f.ctx, ch, Query{})
	require.NoError(t, err)
	f.record(grant("u2", t0)) // rev 3, after the listing

	// List then watch: resume after the page's revision, filtered.
	sub, err := f.tr.Subscribe(SubscribeOptions{Channel: ch, After: page.Revision})
	require.NoError(t, err)
	defer sub.Close()
	f.record(Event{Type: EventGrant, Channel: "other", Contact: "y", At: t0}) // rev 4, filtered out
	f.record(revoke("u1", t0.Add(time.Hour), RevokeRejected))                 // rev 5
	c := next(t, sub)
	assert.Equal(t, "u2", c.Entry.Contact, "replayed from the log")
	assert.Equal(t, int64(3), c.Revision)
	c = next(t, sub)
	assert.Equal(t, Revoked, c.Type)
	assert.Equal(t, int64(5), c.Revision)
	assert.False(t, pendingChange(sub))

	// Resume from the very first revision replays everything of ch.
	all, err := f.tr.Subscribe(SubscribeOptions{Channel: ch, After: 1})
	require.NoError(t, err)
	defer all.Close()
	assert.Equal(t, int64(3), next(t, all).Revision)
	assert.Equal(t, int64(5), next(t, all).Revision)
}

func TestSlowSubscriberIsCutOffNotBlocking(t *testing.T) {
	f := newFixture(t, Config{SubscriberBuffer: 4})
	slow, err := f.tr.Subscribe(SubscribeOptions{})
	require.NoError(t, err)
	fast, err := f.tr.Subscribe(SubscribeOptions{})
	require.NoError(t, err)
	for i := range 10 {
		f.record(grant("u"+string(rune('a'+i)), t0)) // never blocks
		next(t, fast)
	}
	_, err = slow.Next(context.Background())
	require.ErrorIs(t, err, ErrLagged)
	// Resume from the last revision received (none: from the start).
	again, err := f.tr.Subscribe(SubscribeOptions{After: slow.Revision()})
	require.NoError(t, err)
	defer again.Close()
	for i := range 10 {
		assert.Equal(t, "u"+string(rune('a'+i)), next(t, again).Entry.Contact)
	}
	assert.False(t, pendingChange(again))
}

func TestResumeBeyondRetentionAsksToRelist(t *testing.T) {
	st := memory.New(memory.Config{Retention: 2})
	f := newFixture(t, Config{Store: st})
	for i := range 5 {
		f.record(grant("u"+string(rune('a'+i)), t0))
	}
	sub, err := f.tr.Subscribe(SubscribeOptions{After: 1})
	require.NoError(t, err)
	_, err = sub.Next(context.Background())
	require.ErrorIs(t, err, ErrResync)
}

func TestCloseEndsSubscriptions(t *testing.T) {
	f := newFixture(t, Config{})
	sub, err := f.tr.Subscribe(SubscribeOptions{})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := sub.Next(context.Background())
		done <- err
	}()
	require.NoError(t, f.tr.Close())
	require.ErrorIs(t, <-done, ErrClosed)

	f2 := newFixture(t, Config{})
	s2, err := f2.tr.Subscribe(SubscribeOptions{})
	require.NoError(t, err)
	s2.Close()
	s2.Close()
	_, err = s2.Next(context.Background())
	require.ErrorIs(t, err, ErrClosed)
}
