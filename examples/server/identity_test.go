package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
)

// The SSE stream shows one row per person across a merge: the event of the
// joined person names the rows it replaces.
func TestEventStreamOnePersonAcrossAMerge(t *testing.T) {
	e := newTestEnv(t, t0)
	seed(e)
	ctx := context.Background()
	const phone, bsuid = "15550003333", "US.777000111"
	_, err := e.s.tracker.Record(ctx,
		permission.Event{Type: permission.EventGrant, Channel: chA.id, Contact: phone, At: t0, ID: "wamid.p", ExpiresAt: t0.Add(time.Hour)},
		permission.Event{Type: permission.EventGrant, Channel: chA.id, Contact: bsuid, At: t0, ID: "wamid.u", Permanent: true})
	require.NoError(t, err)
	var list callableResp
	require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/callable?limit=1000", &list))
	rows := map[string]bool{}
	for _, c := range list.Contacts {
		rows[c.Contact] = true
	}
	require.True(t, rows[phone] && rows[bsuid], "two persons until Meta joins them")

	st := e.openStream(chA.id, nil, "?token="+testToken+"&after="+itoa(list.Revision))
	_, err = e.s.tracker.Record(ctx, permission.Event{Type: permission.EventIdentity, Channel: chA.id, Contact: phone, Aliases: []string{bsuid}, At: t0})
	require.NoError(t, err)
	ev := st.next(t)
	for _, old := range ev.Data.Replaces {
		delete(rows, old)
	}
	rows[ev.Data.Contact] = true
	assert.True(t, rows[bsuid])
	assert.False(t, rows[phone], "the phone's row is replaced by the person's: %+v", ev)
	assert.Equal(t, phone, ev.Data.WaID)
	assert.Equal(t, bsuid, ev.Data.UserID)

	// The contact answers by either identifier, as one person.
	for _, id := range []string{phone, "+1 555 000 3333", bsuid} {
		var x struct {
			Callable bool    `json:"callable"`
			Kind     *string `json:"kind"`
		}
		require.Equal(t, http.StatusOK, e.get("/api/channels/"+chA.id+"/contacts/"+id, &x), id)
		assert.True(t, x.Callable, id)
		require.NotNil(t, x.Kind)
		assert.Equal(t, "permanent", *x.Kind, id)
	}
}
