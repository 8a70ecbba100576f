package permission

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Retention by age: pruning drops what can no longer decide anything and
// keeps a permanent grant of any age (and the revocation that may end it);
// questions about instants before the horizon are errors, not guesses.
func TestLedgerRetention(t *testing.T) {
	f := newFixture(t, Config{LedgerRetention: 30 * day})
	f.record(permanent("perm", t0, SourceProfile))
	f.record(grant("old", t0.Add(time.Hour)), revoke("old", t0.Add(2*time.Hour), RevokeRejected))
	f.record(requestSent("perm", "wamid.q", t0.Add(3*time.Hour)))
	before := f.store.LedgerLen()

	now := t0.Add(60 * day)
	f.clk.Set(now)
	n, err := f.tr.PruneLedger(f.ctx, now)
	require.NoError(t, err)
	assert.EqualValues(t, 3, n, "the old grant, its revocation and the request")
	assert.Equal(t, before-3, f.store.LedgerLen())

	x, err := f.tr.Explain(f.ctx, ch, "perm", now)
	require.NoError(t, err)
	assert.True(t, x.Callable, "a permanent grant outlives the retention: %s", x.Reason)
	require.Len(t, x.Evidence, 1)
	_, err = f.tr.Explain(f.ctx, ch, "perm", now.Add(-31*day))
	assert.ErrorIs(t, err, ErrBeyondRetention)
	_, err = f.tr.Eligible(f.ctx, ch, Query{Now: now.Add(-31 * day)})
	assert.ErrorIs(t, err, ErrBeyondRetention)
	p, err := f.tr.Eligible(f.ctx, ch, Query{Now: now.Add(-29 * day)})
	require.NoError(t, err)
	require.Len(t, p.Entries, 1)
	assert.Equal(t, "perm", p.Entries[0].Contact)

	// KeepForever never prunes.
	g := newFixture(t, Config{LedgerRetention: KeepForever})
	g.record(grant("old", t0))
	n, err = g.tr.PruneLedger(g.ctx, t0.Add(1000*day))
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = g.tr.Explain(g.ctx, ch, "old", t0.Add(time.Minute))
	assert.NoError(t, err)
}
