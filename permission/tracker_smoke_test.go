package permission

import (
	"context"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/store/memory"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewMock()
	t0 := time.Unix(1767168000, 0).UTC()
	clk.Set(t0)
	tr, err := New(ctx, Config{Store: memory.New(memory.Config{}), Clock: clk})
	require.NoError(t, err)
	defer tr.Close()
	ch, err := tr.Record(ctx, Event{Type: EventGrant, Channel: "c", Contact: "u1", At: t0, ID: "w1"})
	require.NoError(t, err)
	require.Len(t, ch, 1)
	require.Equal(t, Granted, ch[0].Type)
	p, err := tr.Eligible(ctx, "c", Query{})
	require.NoError(t, err)
	require.Len(t, p.Entries, 1)
	require.Equal(t, t0.Add(DefaultTTL), p.Entries[0].ExpiresAt)
	n, err := tr.Sweep(ctx, t0.Add(DefaultTTL))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	p, err = tr.Eligible(ctx, "c", Query{Now: t0.Add(DefaultTTL)})
	require.NoError(t, err)
	require.Empty(t, p.Entries)
}
