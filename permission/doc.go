// Package permission is the core of callready: it tracks, per WhatsApp
// business number (channel) and person, whether the business may call that
// person right now, until when, and why — and whether they could be called
// at any past instant, by what was recorded then or since.
//
// A Tracker is fed Events (permission replies, inbound calls, revocations,
// requests sent, business calls, identity joins, the channel's callback
// setting) and keeps, in its store.Store, in one transaction per batch:
//
//   - the ledger: every accepted event, once (a redelivery is a no-op), with
//     its event time and the time and revision it was recorded at. It is the
//     source of truth; Explain, Eligible for a past instant and History read
//     it;
//   - each person's state, a cache of the fold of their events by the rules
//     of rules.go (pure functions: no locks, no I/O), so any order and any
//     duplication of the same events give the same answers;
//   - a change log: every change to a listed entry (Granted, Extended,
//     Updated, Revoked, Expired), including those the clock causes, gets a
//     revision, and Subscribe streams them, resumable from a revision (list,
//     then watch).
//
// The in-memory index of listed entries (ordered by expiry and by grant
// time per channel, so Eligible returns a page in O(log n + page size);
// AppendEligible writes it into a buffer the caller keeps, allocating
// nothing per entry) changes only by applying committed change-log entries in revision order,
// this tracker's and other instances' alike (Config.Shared).
//
// Temporary permissions expire silently at Meta: the tracker records their
// end itself, either synchronously (Sweep) or with Start's background loop,
// one timer reset to the next instant the clock changes an entry. Time is
// always an argument inside: the injected clock.Clock only supplies "now"
// at the edges.
//
// Limits (CanCall, CanRequest, Explain) add Meta's caps on calls and
// requests and the unanswered-call streak.
//
// The request lifecycle: SendRequest sends a call permission request at
// most once however many callers (or shared trackers) ask at once, and
// records it; the person is then pending (Pending, CountPending,
// PendingRequest, and ChangePending/ChangePendingEnded in the change log)
// until Meta's reply names the request, a newer one replaces it, or
// PendingTTL passes. Reask lists the people whose permission lapsed and
// when they may be asked again; ReaskAll asks them.
package permission
