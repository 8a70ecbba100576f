package permission

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func tempGrant(contact string, at, expires time.Time, ctxID string) Event {
	return Event{Type: EventGrant, Channel: ch, Contact: contact, At: at, ExpiresAt: expires, ID: "wamid.g." + contact + at.Format("0102150405"), Context: ctxID}
}

// reaskFixture: now is t0 + 60 days.
func reaskFixture(t *testing.T) (*fixture, time.Time) {
	f := newFixture(t, Config{})
	now := t0.Add(60 * 24 * time.Hour)
	d := 24 * time.Hour
	ago := func(x time.Duration) time.Time { return now.Add(-x) }
	f.record(
		tempGrant("u1", ago(9*d), ago(2*d), ""),                                                   // expired 2 days ago
		reqSent("u2", "wamid.r2", ago(10*d)), reply("u2", "wamid.r2", ago(10*d-time.Hour), false), // declined 10 days ago
		reqSent("u3", "wamid.r3", ago(25*time.Hour)), reply("u3", "wamid.r3", ago(24*time.Hour), false), // declined yesterday
		tempGrant("u4", ago(time.Hour), now.Add(6*d), ""),                                  // callable
		tempGrant("u5", ago(47*d), ago(40*d), ""),                                          // expired 40 days ago: out of the window
		tempGrant("u6", ago(9*d), ago(2*d), ""), reqSent("u6", "wamid.r6", ago(time.Hour)), // expired, but asked again: pending
		// Asked 23 h ago, accepted for a short while: expired an hour ago,
		// the daily request limit holds for another hour.
		reqSent("u7", "wamid.r7", ago(23*time.Hour)), tempGrant("u7", ago(23*time.Hour), ago(time.Hour), "wamid.r7"),
		revoke("u8", ago(8*d), RevokeProfile), // switched calls off 8 days ago
	)
	f.clk.Set(now)
	return f, now
}

func TestReask(t *testing.T) {
	f, now := reaskFixture(t)
	var got []ReaskEntry
	q := ReaskQuery{Limit: 1}
	for {
		p, err := f.tr.Reask(f.ctx, ch, q)
		require.NoError(t, err)
		got = append(got, p.Entries...)
		if p.NextCursor == "" {
			break
		}
		q.Cursor = p.NextCursor
	}
	var contacts []string
	for _, e := range got {
		contacts = append(contacts, e.Contact)
	}
	// Most recently lapsed first.
	require.Equal(t, []string{"u7", "u1", "u8", "u2"}, contacts)
	u7, u1, u8, u2 := got[0], got[1], got[2], got[3]
	assert.Equal(t, ReasonExpired, u7.Reason)
	assert.Equal(t, now.Add(-time.Hour), u7.LapsedAt)
	assert.False(t, u7.Decision.Allowed)
	assert.Equal(t, ReasonRequestLimitDay, u7.Decision.Reason)
	assert.Equal(t, now.Add(time.Hour), u7.AllowedAt)
	assert.Equal(t, ReasonExpired, u1.Reason)
	assert.Equal(t, now, u1.AllowedAt, "allowed now")
	assert.True(t, u1.Decision.Allowed)
	assert.Equal(t, ReasonRevoked, u8.Reason)
	assert.Equal(t, StatusRevokedProfile, u8.Status)
	assert.Equal(t, StatusRejected, u2.Status)

	// A shorter DeclinedFor lists yesterday's rejection too; a shorter
	// window drops the older lapses.
	p, err := f.tr.Reask(f.ctx, ch, ReaskQuery{DeclinedFor: time.Hour, Within: 5 * 24 * time.Hour})
	require.NoError(t, err)
	contacts = contacts[:0]
	for _, e := range p.Entries {
		contacts = append(contacts, e.Contact)
	}
	assert.Equal(t, []string{"u7", "u3", "u1"}, contacts)
	_, err = f.tr.Reask(f.ctx, ch, ReaskQuery{Cursor: "x"})
	require.ErrorIs(t, err, ErrBadCursor)
}

func TestReaskAll(t *testing.T) {
	f, now := reaskFixture(t)
	sent := map[string]int{}
	boom := errors.New("131026: old app")
	results, err := f.tr.ReaskAll(f.ctx, ch, ReaskQuery{}, func(_ context.Context, e ReaskEntry) (string, error) {
		sent[e.Contact]++
		if e.Contact == "u8" {
			return "", boom
		}
		return "wamid.re." + e.Contact, nil
	})
	require.NoError(t, err)
	require.Len(t, results, 4)
	byContact := map[string]ReaskResult{}
	for _, r := range results {
		byContact[r.Entry.Contact] = r
	}
	assert.Equal(t, map[string]int{"u1": 1, "u2": 1, "u8": 1}, sent, "u7 is not allowed yet: not sent")
	assert.Equal(t, "wamid.re.u1", byContact["u1"].RequestID)
	assert.Equal(t, "wamid.re.u2", byContact["u2"].RequestID)
	require.ErrorIs(t, byContact["u7"].Err, ErrRequestNotAllowed)
	require.ErrorIs(t, byContact["u8"].Err, boom)

	// Those asked are pending now, and off the re-ask list.
	assert.Equal(t, []string{"u6", "u1", "u2"}, pendingContacts(t, f.tr, now, 10), "u6 asked before, u1 and u2 now")
	p, err := f.tr.Reask(f.ctx, ch, ReaskQuery{})
	require.NoError(t, err)
	var left []string
	for _, e := range p.Entries {
		left = append(left, e.Contact)
	}
	assert.Equal(t, []string{"u7", "u8"}, left)
}
