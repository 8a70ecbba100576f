// Package permission is the core of callready: it tracks, per WhatsApp
// business number (channel) and user (contact), whether the business may
// call that user right now, until when, and why.
//
// A Tracker is fed Events (permission replies, inbound calls, revocations,
// requests sent, business calls) and keeps:
//
//   - the merged state of each pair in a store.Store, by rules that make the
//     result independent of arrival order and duplicates (see merge in
//     state.go): a late accept never resurrects a newer reject, a late
//     reject still ends an older grant;
//   - an in-memory index of callable entries, ordered by expiry and by grant
//     time per channel, so Eligible returns a page in O(log n + page size);
//   - a change log: every change to the callable list (Granted, Extended,
//     Revoked, Expired) gets a revision, and Subscribe streams them,
//     resumable from a revision (list, then watch).
//
// Temporary permissions expire silently at Meta: the tracker expires them
// itself, either synchronously (Sweep) or with Start's background loop, one
// timer reset to the next expiry. Time is always an argument inside: the
// injected clock.Clock only supplies "now" at the edges.
//
// Limits (CanCall, CanRequest, Explain) add Meta's caps on calls and
// requests and the unanswered-call streak.
package permission
