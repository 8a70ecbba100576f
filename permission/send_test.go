package permission

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSendRequestConcurrentSendersSendOnce: many goroutines ask for the
// same person at once; send runs once, the others are told why not.
func TestSendRequestConcurrentSendersSendOnce(t *testing.T) {
	f := newFixture(t, Config{})
	var calls atomic.Int32
	send := func(context.Context) (string, error) {
		n := calls.Add(1)
		return fmt.Sprintf("wamid.sent.%d", n), nil
	}
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	sent := make([]SentRequest, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			sent[i], errs[i] = f.tr.SendRequest(f.ctx, ch, "+34 600 000 001", send)
		})
	}
	close(start)
	wg.Wait()
	require.EqualValues(t, 1, calls.Load(), "one request sent")
	won := 0
	for i, err := range errs {
		if err == nil {
			won++
			assert.Equal(t, "wamid.sent.1", sent[i].RequestID)
			assert.Equal(t, "34600000001", sent[i].Contact)
			continue
		}
		var re *RequestError
		require.ErrorAs(t, err, &re)
		assert.True(t, errors.Is(err, ErrRequestInFlight) || errors.Is(err, ErrPending), "%v", err)
	}
	assert.Equal(t, 1, won)
	page, err := f.tr.Pending(f.ctx, ch, PendingQuery{})
	require.NoError(t, err)
	require.Len(t, page.Entries, 1)
	assert.Equal(t, "wamid.sent.1", page.Entries[0].RequestID)
}

func TestSendRequestLoserSeesTheWinner(t *testing.T) {
	f := newFixture(t, Config{})
	inSend, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := f.tr.SendRequest(f.ctx, ch, "u1", func(context.Context) (string, error) {
			close(inSend)
			<-release
			return "wamid.1", nil
		})
		done <- err
	}()
	<-inSend
	_, err := f.tr.SendRequest(f.ctx, ch, "u1", func(context.Context) (string, error) {
		t.Error("the loser must not send")
		return "", nil
	})
	var re *RequestError
	require.ErrorAs(t, err, &re)
	require.ErrorIs(t, err, ErrRequestInFlight)
	assert.Equal(t, t0, re.ClaimedAt)
	assert.Equal(t, t0.Add(ClaimTTL), re.ClaimedUntil)
	close(release)
	require.NoError(t, <-done)

	_, err = f.tr.SendRequest(f.ctx, ch, "u1", func(context.Context) (string, error) { return "wamid.2", nil })
	require.ErrorIs(t, err, ErrPending)
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "wamid.1", re.Pending.RequestID)
	assert.Equal(t, t0.Add(PendingTTL), re.Pending.LapsesAt)

	// Rejected: not pending any more, but the 24 h request limit holds.
	f.clk.Add(time.Hour)
	f.record(reply("u1", "wamid.1", f.clk.Now(), false))
	_, err = f.tr.SendRequest(f.ctx, ch, "u1", func(context.Context) (string, error) { return "wamid.3", nil })
	require.ErrorIs(t, err, ErrRequestNotAllowed)
	require.ErrorAs(t, err, &re)
	assert.Equal(t, ReasonRequestLimitDay, re.Decision.Reason)
	assert.Equal(t, t0.Add(24*time.Hour), re.Decision.RetryAt)

	f.clk.Set(t0.Add(24 * time.Hour))
	got, err := f.tr.SendRequest(f.ctx, ch, "u1", func(context.Context) (string, error) { return "wamid.4", nil })
	require.NoError(t, err)
	assert.Equal(t, "wamid.4", got.RequestID)
}

// TestSendRequestClaimLapses: a sender that died after claiming (the claim
// is written, nothing sent, nothing released) blocks the person only until
// ClaimTTL has passed.
func TestSendRequestClaimLapses(t *testing.T) {
	f := newFixture(t, Config{})
	d, err := f.tr.CanRequest(f.ctx, ch, "u1", time.Time{})
	require.NoError(t, err)
	_, _, err = f.tr.claimRequest(f.ctx, ch, "u1", t0, d) // and then the process died
	require.NoError(t, err)
	send := func(context.Context) (string, error) { return "wamid.1", nil }
	f.clk.Add(ClaimTTL - time.Second)
	_, err = f.tr.SendRequest(f.ctx, ch, "u1", send)
	require.ErrorIs(t, err, ErrRequestInFlight)
	f.clk.Add(time.Second)
	_, err = f.tr.SendRequest(f.ctx, ch, "u1", send)
	require.NoError(t, err)
}

// TestSendRequestFailureReleases: when send fails nothing is recorded and
// the next ask sends at once.
func TestSendRequestFailureReleases(t *testing.T) {
	f := newFixture(t, Config{})
	boom := errors.New("meta said no")
	_, err := f.tr.SendRequest(f.ctx, ch, "u1", func(ctx context.Context) (string, error) {
		dl, ok := ctx.Deadline()
		assert.True(t, ok)
		assert.WithinDuration(t, time.Now().Add(ClaimTTL), dl, time.Minute, "send ends with its claim")
		return "", boom
	})
	require.ErrorIs(t, err, boom)
	n, err := f.tr.CountPending(ch, time.Time{})
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = f.tr.SendRequest(f.ctx, ch, "u1", func(context.Context) (string, error) { return "", nil })
	require.Error(t, err, "an empty message id is a failed send")
	got, err := f.tr.SendRequest(f.ctx, ch, "u1", func(context.Context) (string, error) { return "wamid.ok", nil })
	require.NoError(t, err)
	assert.Equal(t, "wamid.ok", got.RequestID)
}

func TestSendRequestPermanentHolder(t *testing.T) {
	f := newFixture(t, Config{})
	f.record(permanent("u1", t0, SourceProfile))
	_, err := f.tr.SendRequest(f.ctx, ch, "u1", func(context.Context) (string, error) { return "wamid.1", nil })
	require.ErrorIs(t, err, ErrRequestNotAllowed)
	var re *RequestError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, ReasonPermanentHeld, re.Decision.Reason)
}
