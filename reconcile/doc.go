// Package reconcile closes the loop with Meta: it asks Meta's GET
// /<PHONE_NUMBER_ID>/call_permissions about the contacts whose state
// matters most and records every disagreement in the tracker's ledger as
// an event with Origin permission.OriginReconcile, so the list corrects
// itself and Explain names Meta's answer (Source
// permission.SourceReconcile, Reason permission.RevokeReconciled).
//
//	r, err := reconcile.New(reconcile.Config{
//		Tracker:  tr,
//		API:      client, // a *cloudapi.Client
//		Channels: []string{"106540352242922"},
//	})
//	go r.Run(ctx)                                  // rounds, within the rate
//	res, err := r.CheckContact(ctx, ch, "16505551234") // one contact, now
//
// # What is checked
//
// A round (Round, and Run every Config.Interval) reads each channel's
// callback setting with GET /<PHONE_NUMBER_ID>/settings and records it
// (Tracker.SetCallbackPermission) when it differs from the last one read,
// then checks per channel, in this order: listed entries expiring within
// Config.ExpiringWithin, unconfirmed callback grants, entries with an
// unanswered streak of 2 or more, the host's Config.Candidates (people
// not listed, e.g. with a request outstanding: where a missed accept
// hides), then a sample of the rest of the list that rotates from round to
// round. Every GET waits for a token bucket on the injected clock
// (Config.Rate per second, default 5, Meta's 2025 limit); Meta's 613 is
// retried with backoff by the cloudapi client, and when retries run out
// the round stops.
//
// # What is recorded
//
// See CheckContact: missed accepts become grants with Meta's expiry,
// missed revokes revocations, a permanent permission Meta knows a
// permanent grant, a wrong expiry a grant with Meta's expiry (preceded by
// a revocation when Meta's is earlier, since the tracker keeps the
// covering grant that lasts longest). Meta's request and call limits
// (current_usage, limit_expiration_time) are compared with the tracker's
// Limits and reported as budget drift; where Meta counts more use, the
// difference is recorded as usage events (requests and calls with
// SourceReconcile, which count against the limits and do nothing else),
// so the local budget follows Meta's.
//
// Stats counts checks, errors and drift by kind, for metrics.
package reconcile
