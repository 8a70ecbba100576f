package permission

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/callready/callready/store"
)

// The ledger is the source of truth: every accepted event is appended once
// (see store.LedgerEvent), and every state is a fold of a pair's events.

// ledgerEvent is the ledger form of a validated event. An inbound call's
// ExpiresAt is the end of the callback grant it gives when the channel's
// setting allows; a callback setting is a channel event (no contact) with
// its status in Source.
func ledgerEvent(e Event, ttl time.Duration, recorded time.Time) store.LedgerEvent {
	le := store.LedgerEvent{
		Key: store.Key{Channel: e.Channel, Contact: e.Contact}, Type: e.Type.String(), Aliases: e.Aliases, ID: e.ID, Context: e.Context,
		At: e.At, ExpiresAt: e.ExpiresAt, Permanent: e.Permanent, Connected: e.Connected,
		Source: string(e.Source), Reason: string(e.Reason), Origin: string(e.Origin), RecordedAt: recorded,
	}
	switch e.Type {
	case EventInboundCall:
		// The callback grant the call gives if the channel's setting allows.
		le.ExpiresAt = e.At.Add(ttl)
	case EventCallbackSetting:
		le.Source = string(e.Callback)
	}
	le.Dedupe = dedupeKey(&le)
	return le
}

// dedupeKey identifies an event by its normalized content: a redelivery
// of the same webhook (same Meta id and kind, same facts) hashes the same,
// whatever its origin. An inbound call's derived expiry is left out, so a
// redelivery after the callback setting changed is still the same call.
func dedupeKey(le *store.LedgerEvent) string {
	var buf [512]byte // the common event fits: no allocation but the key
	b := appendStr(buf[:0], le.Key.Contact)
	for _, a := range le.Aliases {
		b = appendStr(b, a)
	}
	b = appendStr(b, le.Type)
	b = appendStr(b, le.ID)
	b = appendStr(b, le.Context)
	b = binary.AppendVarint(b, toNs(le.At))
	if le.Type != EventInboundCall.String() {
		b = binary.AppendVarint(b, toNs(le.ExpiresAt))
	}
	flags := byte(0)
	if le.Permanent {
		flags |= 1
	}
	if le.Connected {
		flags |= 2
	}
	b = append(b, flags)
	b = appendStr(b, le.Source)
	b = appendStr(b, le.Reason)
	sum := sha256.Sum256(b)
	var out [22]byte // base64 of 16 bytes, unpadded
	base64.RawURLEncoding.Encode(out[:], sum[:16])
	return string(out[:])
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var eventTypeByName = func() map[string]EventType {
	m := make(map[string]EventType, len(eventTypeNames))
	for t, n := range eventTypeNames {
		m[n] = t
	}
	return m
}()

// scanLedger calls fn with every committed event q selects, in (At, Seq)
// order, reading a page of q.Limit (default 1000) at a time, so memory holds
// one page; fn returns false to stop.
func scanLedger(ctx context.Context, st store.Store, q store.LedgerQuery, fn func(*store.LedgerEvent) bool) error {
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	for {
		page, err := st.Ledger(ctx, q)
		if err != nil {
			return err
		}
		for i := range page {
			if !fn(&page[i]) {
				return nil
			}
		}
		if len(page) < q.Limit {
			return nil
		}
		last := page[len(page)-1]
		q.After = store.LedgerCursor{At: last.At, Seq: last.Seq}
	}
}

// ledgerOrder is the ledger's order, (At, Seq), for events merged from
// several identifiers' reads.
func ledgerOrder(a, b store.LedgerEvent) int {
	return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Seq, b.Seq))
}

// ledgerOfPair reads every ledger event of one pair.
func ledgerOfPair(ctx context.Context, st store.Store, k store.Key) ([]store.LedgerEvent, error) {
	var out []store.LedgerEvent
	err := scanLedger(ctx, st, store.LedgerQuery{Channel: k.Channel, Contact: k.Contact}, func(e *store.LedgerEvent) bool {
		out = append(out, *e)
		return true
	})
	return out, err
}

// recOf is a ledger event as the rules read it.
func recOf(le *store.LedgerEvent, ref int) rec {
	r := rec{
		typ: eventTypeByName[le.Type], id: le.ID, ctx: le.Context, at: le.At.UnixNano(), exp: toNs(le.ExpiresAt),
		connected: le.Connected, source: Source(le.Source), reason: RevokeReason(le.Reason), ref: ref,
		recorded: toNs(le.RecordedAt),
		contact:  le.Key.Contact, aliases: le.Aliases,
	}
	if le.Permanent {
		r.exp = never
	}
	return r
}

// foldLedger folds a pair's ledger events into a fresh state, keeping in
// each grant and revocation the indexes of the events behind it.
func foldLedger(events []store.LedgerEvent) pairState {
	s := pairState{floor: none, wake: none}
	for i := range events {
		s.fold(recOf(&events[i], i))
	}
	return s
}

// rebuild folds a pair's ledger into the cached state, compacted at the
// latest recording time, as incremental recording would have left it.
func rebuild(events []store.LedgerEvent) pairState {
	s := pairState{floor: none, wake: none}
	floor := int64(none)
	for i := range events {
		s.fold(recOf(&events[i], -1))
		floor = max(floor, toNs(events[i].RecordedAt))
	}
	if floor != none {
		s.compact(floor)
	}
	return s
}

// channelOf folds a channel's own ledger events (its callback settings).
func channelOf(events []store.LedgerEvent) *channelState {
	c := &channelState{}
	for i := range events {
		if e := &events[i]; e.Type == EventCallbackSetting.String() {
			c.fold(e.At.UnixNano(), CallbackStatus(e.Source))
		}
	}
	return c
}
