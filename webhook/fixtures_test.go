package webhook_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/webhook"
)

// The shared fixtures live beside the repository (../shared); the package
// keeps copies so its tests and fuzz seeds stand alone.
const sharedFixtures = "../../shared/fixtures/webhooks"

func TestFixtureCopiesMatchShared(t *testing.T) {
	shared, err := filepath.Glob(filepath.Join(sharedFixtures, "*.json"))
	if err != nil || len(shared) == 0 {
		t.Skipf("no shared fixtures at %s", sharedFixtures)
	}
	// The folder is the package's own: it holds the shared files, and may
	// hold more.
	for _, p := range shared {
		want, err := os.ReadFile(p)
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(fixtures, filepath.Base(p)))
		require.NoError(t, err, "copy missing: cp %s %s/", p, fixtures)
		assert.Equal(t, string(want), string(got), "%s differs from the shared fixture", filepath.Base(p))
	}
}

const (
	sheena = "16505551234"
	ravi   = "919812345678"
	ana    = "5511987654321"
	tomas  = "34612345678"
	liWei  = "8613800138000"
	amina  = "2348031234567"
	oliver = "447700900123"
	jonas  = "4915112345678"
	priya  = "919876543210"
	kenji  = "819012345678"
	week   = 7 * 24 * 3600
)

// openBackend returns a fresh tracker at now and a quarantine, on one
// kind of store.
type openBackend func(t *testing.T) (*permission.Tracker, webhook.Quarantine)

func memoryBackend(t *testing.T) (*permission.Tracker, webhook.Quarantine) {
	return newTracker(t), newQuarantine()
}

// quarantined lists every item q holds.
func quarantined(t *testing.T, q webhook.Quarantine) []webhook.QuarantinedItem {
	t.Helper()
	items, next, err := q.List(context.Background(), "", webhook.MaxQuarantinePage)
	require.NoError(t, err)
	require.Empty(t, next)
	return items
}

// TestFixtures sends each fixture alone through the handler into a fresh
// tracker and checks the callable list and the explanations.
func TestFixtures(t *testing.T) { runFixtures(t, memoryBackend) }

func runFixtures(t *testing.T, open openBackend) {
	tests := []struct {
		file     string
		main     []listed // the callable list of chanMain
		alt      []listed // of chanAlt
		statuses map[string]permission.Status
		messages int
		calls    int
		// Optional expectations.
		streak      map[string]int // UnansweredStreak by contact of chanMain
		settings    []webhook.ChannelSetting
		statusCodes []int // the Meta error codes of OnStatus's statuses
		quarantined int
	}{
		{
			file:     "permission-accept-temporary.json",
			main:     []listed{{sheena, permission.Temporary, permission.SourceRequest, unix(1767168000), unix(1767772800)}},
			statuses: map[string]permission.Status{sheena: permission.StatusTemporary},
		},
		{
			file:     "permission-accept-permanent.json",
			main:     []listed{{ravi, permission.Permanent, permission.SourceRequest, unix(1767171600), time.Time{}}},
			statuses: map[string]permission.Status{ravi: permission.StatusPermanent},
		},
		{
			file:     "permission-profile-permanent.json",
			main:     []listed{{ana, permission.Permanent, permission.SourceProfile, unix(1767175200), time.Time{}}},
			statuses: map[string]permission.Status{ana: permission.StatusPermanent},
		},
		{
			file:     "permission-reject.json",
			statuses: map[string]permission.Status{sheena: permission.StatusRejected},
		},
		{
			file:     "permission-callback-automatic.json",
			main:     []listed{{tomas, permission.Temporary, permission.SourceCallback, unix(1767180000), unix(1767784800)}},
			statuses: map[string]permission.Status{tomas: permission.StatusTemporary},
		},
		{
			file:     "permission-auto-revoke.json",
			statuses: map[string]permission.Status{ravi: permission.StatusRevokedAutomatic},
		},
		{
			file:     "call-inbound-connect.json",
			main:     []listed{{tomas, permission.Temporary, permission.SourceInboundCall, unix(1767179940), unix(1767179940 + week)}},
			statuses: map[string]permission.Status{tomas: permission.StatusTemporary},
			calls:    1,
		},
		{
			file:     "call-inbound-missed.json",
			main:     []listed{{tomas, permission.Temporary, permission.SourceInboundCall, unix(1767180000), unix(1767180000 + week)}},
			statuses: map[string]permission.Status{tomas: permission.StatusTemporary},
			calls:    1,
		},
		{
			file: "call-inbound-completed.json",
			// The implicit grant runs from the call's start_time.
			main:     []listed{{liWei, permission.Temporary, permission.SourceInboundCall, unix(1767190000), unix(1767190000 + week)}},
			statuses: map[string]permission.Status{liWei: permission.StatusTemporary},
			calls:    1,
		},
		{
			file:     "call-business-status-rejected.json",
			statuses: map[string]permission.Status{ravi: permission.StatusNeverGranted},
			calls:    1,
		},
		{
			file:     "batch-two-channels.json",
			main:     []listed{{amina, permission.Temporary, permission.SourceRequest, unix(1767210000), unix(1767814800)}},
			statuses: map[string]permission.Status{amina: permission.StatusTemporary},
			messages: 2,
		},
		{
			// COMPLETED without duration or start_time: missed, yet a
			// callback grant all the same.
			file:     "call-inbound-completed-unanswered.json",
			main:     []listed{{oliver, permission.Temporary, permission.SourceInboundCall, unix(1767220000), unix(1767220000 + week)}},
			statuses: map[string]permission.Status{oliver: permission.StatusTemporary},
			calls:    1,
		},
		{
			file:     "call-business-status-accepted.json",
			statuses: map[string]permission.Status{jonas: permission.StatusNeverGranted},
			streak:   map[string]int{jonas: 0},
			calls:    2, // RINGING, then ACCEPTED
		},
		{
			file:     "call-business-completed-unanswered.json",
			statuses: map[string]permission.Status{jonas: permission.StatusNeverGranted},
			streak:   map[string]int{jonas: 1},
			calls:    1,
		},
		{
			file:   "call-business-technical-failure.json",
			streak: map[string]int{jonas: 0},
			calls:  1,
		},
		{
			file: "settings-callback-disabled.json",
			settings: []webhook.ChannelSetting{{
				Channel: chanAlt, CallbackPermission: webhook.CallbackDisabled, At: unix(1767240000),
			}},
		},
		{
			// Identity changes grant nothing; they keep the user's history
			// under the new identifier (see store/sql's identity tests).
			file:     "system-user-changed-number.json",
			statuses: map[string]permission.Status{"61498765432": permission.StatusNeverGranted},
			messages: 1,
		},
		{
			file:     "system-user-changed-user-id.json",
			statuses: map[string]permission.Status{"AU.99998888777766665555": permission.StatusNeverGranted},
			messages: 1,
		},
		{
			file:        "message-status-app-too-old.json",
			statuses:    map[string]permission.Status{sheena: permission.StatusNeverGranted},
			statusCodes: []int{131026},
		},
		{
			file: "batch-quarantine-mixed.json",
			main: []listed{
				{priya, permission.Temporary, permission.SourceRequest, unix(1767250000), unix(1767854800)},
				{kenji, permission.Permanent, permission.SourceRequest, unix(1767250060), time.Time{}},
			},
			statuses: map[string]permission.Status{priya: permission.StatusTemporary, kenji: permission.StatusPermanent},
			// A reply whose user has a NUL byte, a call of an unknown
			// direction, a value whose channel is a number.
			quarantined: 3,
		},
		{
			file:     "message-text.json",
			statuses: map[string]permission.Status{sheena: permission.StatusNeverGranted},
			messages: 1,
		},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			tr, q := open(t)
			var mu sync.Mutex
			var msgs []webhook.Message
			var calls []webhook.Call
			var settings []webhook.ChannelSetting
			var codes []int
			h := newHandler(t, webhook.Config{
				Recorder:   tr,
				Quarantine: q,
				OnSetting: func(_ context.Context, s webhook.ChannelSetting) error {
					s.Raw = nil
					settings = append(settings, s)
					return nil
				},
				OnStatus: func(_ context.Context, s webhook.MessageStatus) error {
					for _, e := range s.Errors {
						codes = append(codes, e.Code)
					}
					return nil
				},
				OnMessage: func(_ context.Context, m webhook.Message) error {
					mu.Lock()
					defer mu.Unlock()
					msgs = append(msgs, m)
					return nil
				},
				OnCall: func(_ context.Context, c webhook.Call) error {
					mu.Lock()
					defer mu.Unlock()
					calls = append(calls, c)
					return nil
				},
			})
			require.Equal(t, http.StatusOK, post(t, h, readFixture(t, tt.file)))

			assert.Equal(t, orEmpty(tt.main), list(t, tr, chanMain), "callable list of %s", chanMain)
			assert.Equal(t, orEmpty(tt.alt), list(t, tr, chanAlt), "callable list of %s", chanAlt)
			for contact, st := range tt.statuses {
				x := explain(t, tr, chanMain, contact)
				assert.Equal(t, st, x.Status, "Explain(%s): %s", contact, x.Reason)
			}
			assert.Len(t, msgs, tt.messages)
			assert.Len(t, calls, tt.calls)
			for contact, n := range tt.streak {
				assert.Equal(t, n, explain(t, tr, chanMain, contact).Limits.UnansweredStreak, "streak of %s", contact)
			}
			assert.Equal(t, tt.settings, settings)
			assert.Equal(t, tt.statusCodes, codes)
			st := h.Stats()
			assert.EqualValues(t, 1, st.Received)
			assert.EqualValues(t, 1, st.Accepted)
			assert.EqualValues(t, tt.quarantined, st.Quarantined)
			assert.Len(t, quarantined(t, q), tt.quarantined)
		})
	}
	for _, name := range fixtureNames(t) {
		assert.True(t, covered[name], "fixture %s has no expectations in TestFixtures", name)
	}
}

// orEmpty turns nil into the empty list that list returns.
func orEmpty(l []listed) []listed {
	if l == nil {
		return []listed{}
	}
	return l
}

// The state after every fixture, whatever the order.
var (
	wantAllMain = []listed{
		// The automatic reply and the missed call grant the same window; the
		// reply's source wins the tie.
		{tomas, permission.Temporary, permission.SourceCallback, unix(1767179940), unix(1767784800)}, // from the call's connect; Meta's expiry
		{liWei, permission.Temporary, permission.SourceInboundCall, unix(1767190000), unix(1767190000 + week)},
		{amina, permission.Temporary, permission.SourceRequest, unix(1767210000), unix(1767814800)},
		{oliver, permission.Temporary, permission.SourceInboundCall, unix(1767220000), unix(1767220000 + week)},
		{priya, permission.Temporary, permission.SourceRequest, unix(1767250000), unix(1767854800)},
		// Permanent entries last, the most recently granted first.
		{kenji, permission.Permanent, permission.SourceRequest, unix(1767250060), time.Time{}},
		{ana, permission.Permanent, permission.SourceProfile, unix(1767175200), time.Time{}},
	}
	wantAllStatuses = map[string]permission.Status{
		sheena: permission.StatusRejected,         // accepted, then rejected a day later
		ravi:   permission.StatusRevokedAutomatic, // permanent, then revoked by Meta
		ana:    permission.StatusPermanent,
		tomas:  permission.StatusTemporary,
		liWei:  permission.StatusTemporary,
		amina:  permission.StatusTemporary,
		oliver: permission.StatusTemporary,
		priya:  permission.StatusTemporary,
		kenji:  permission.StatusPermanent,
		jonas:  permission.StatusNeverGranted,
	}
)

// TestFixturesConverge delivers every fixture in several orders, with
// duplicates, and expects the same list and explanations every time.
func TestFixturesConverge(t *testing.T) { runConverge(t, memoryBackend, 5) }

func runConverge(t *testing.T, open openBackend, shuffles uint64) {
	names := fixtureNames(t)
	reversed := make([]string, len(names))
	for i, n := range names {
		reversed[len(names)-1-i] = n
	}
	orders := map[string][]string{
		"sorted":   names,
		"reversed": reversed,
		"twice":    append(append([]string(nil), reversed...), names...),
	}
	for seed := uint64(1); seed <= shuffles; seed++ {
		r := rand.New(rand.NewPCG(seed, 0))
		o := append(append([]string(nil), names...), names[r.IntN(len(names))], names[r.IntN(len(names))])
		r.Shuffle(len(o), func(i, j int) { o[i], o[j] = o[j], o[i] })
		orders[fmt.Sprintf("shuffled-%d", seed)] = o
	}

	var first map[string]permission.Explanation
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			tr, q := open(t)
			h := newHandler(t, webhook.Config{Recorder: tr, Quarantine: q})
			for _, f := range order {
				require.Equal(t, http.StatusOK, post(t, h, readFixture(t, f)), f)
			}
			// Re-deliveries quarantine nothing twice.
			assert.Len(t, quarantined(t, q), 3)
			assert.Equal(t, wantAllMain, list(t, tr, chanMain))
			assert.Equal(t, []listed{}, list(t, tr, chanAlt))
			got := map[string]permission.Explanation{}
			for contact, st := range wantAllStatuses {
				x := explain(t, tr, chanMain, contact)
				assert.Equal(t, st, x.Status, "Explain(%s): %s", contact, x.Reason)
				got[contact] = x
			}
			// Ravi's rejected business call came before Meta's automatic
			// revoke, where the unanswered streak restarts. Jonas: an
			// accepted call, then one completed unanswered (counts) and one
			// technical failure (does not).
			assert.Equal(t, 0, got[ravi].Limits.UnansweredStreak)
			assert.Equal(t, 1, got[jonas].Limits.UnansweredStreak)
			for contact, x := range got {
				for i := range x.Evidence {
					x.Evidence[i].Revision = 0 // the change-log position depends on the order
				}
				got[contact] = x
			}
			if first == nil {
				first = got
			} else {
				assert.Equal(t, first, got, "explanations depend on delivery order")
			}
		})
	}
}
