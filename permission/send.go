package permission

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/callready/callready/store"
)

// Sending a call permission request, once.
//
// SendRequest claims the person in a store transaction before it calls
// Meta: the claim (a token and an expiry) is written into the person's
// cached state, and the transaction that writes it reads that state first.
// Stores serialize those transactions (memory's Update holds one lock;
// sqlstore locks its meta row, and the pair row with SELECT … FOR UPDATE),
// so of two goroutines, or two Shared trackers on one PostgreSQL, asking at
// once, exactly one sees no claim and sends; the other gets
// ErrRequestInFlight. Once the request is recorded (EventRequestSent with
// the wamid) the person is pending and a later ask gets ErrPending, then
// the request limits.
//
// A claim lapses ClaimTTL after it was made, so a sender that died between
// the claim and the send, or between the send and the record, never blocks
// the person: the next ask after the lapse sends again (if that first
// request did reach Meta, Meta's own limits refuse the second: 138009).
// send runs under a context that ends ClaimTTL after it started, so a slow
// send does not outlive its claim.

// ClaimTTL is how long a request claim lasts: enough for one send to
// Meta's API with its retries.
const ClaimTTL = 2 * time.Minute

// Errors SendRequest returns when it sends nothing; they come wrapped in a
// *RequestError carrying the state that decided.
var (
	// ErrRequestInFlight: another sender holds the claim on the person
	// and is sending a request now.
	ErrRequestInFlight = errors.New("permission: a request to this person is being sent")
	// ErrPending: a request to the person is pending (sent, not answered,
	// not lapsed).
	ErrPending = errors.New("permission: a request to this person is pending")
	// ErrRequestNotAllowed: CanRequest forbids a request now (the request
	// limits, or a permanent permission held).
	ErrRequestNotAllowed = errors.New("permission: request not allowed")
)

// RequestError says why SendRequest did not send, with the winner's state.
type RequestError struct {
	Err      error    // ErrRequestInFlight, ErrPending or ErrRequestNotAllowed
	Decision Decision // CanRequest's answer
	// Pending is the pending request (ErrPending).
	Pending PendingEntry
	// ClaimedAt and ClaimedUntil bound the other sender's claim
	// (ErrRequestInFlight).
	ClaimedAt, ClaimedUntil time.Time
}

func (e *RequestError) Error() string {
	switch {
	case errors.Is(e.Err, ErrPending):
		return fmt.Sprintf("%v: %s sent %s, lapses %s", e.Err, e.Pending.RequestID, stamp(e.Pending.SentAt), stamp(e.Pending.LapsesAt))
	case errors.Is(e.Err, ErrRequestInFlight):
		return fmt.Sprintf("%v (claimed until %s)", e.Err, stamp(e.ClaimedUntil))
	}
	return fmt.Sprintf("%v: %s", e.Err, e.Decision.Reason)
}

func (e *RequestError) Unwrap() error { return e.Err }

// SendFunc sends one call permission request to Meta (free-form or
// template) and returns its message id (wamid).
type SendFunc func(ctx context.Context) (wamid string, err error)

// SentRequest is a request SendRequest sent and recorded.
type SentRequest struct {
	Channel string
	// Contact is the identifier the person is listed under.
	Contact   string
	RequestID string // the wamid send returned
	SentAt    time.Time
	LapsesAt  time.Time // SentAt + PendingTTL
}

// SendRequest sends a call permission request to contact on channel at
// most once however many callers ask at once: it checks CanRequest, claims
// the person (see ClaimTTL), calls send, and records EventRequestSent with
// the wamid send returned, which makes the person pending. When it sends
// nothing it returns a *RequestError wrapping ErrRequestInFlight,
// ErrPending or ErrRequestNotAllowed. An error from send is returned
// wrapped, with the claim released; so is a failure to record after a
// successful send (then the claim lapses by itself and the request is in
// SentRequest).
func (t *Tracker) SendRequest(ctx context.Context, channel, contact string, send SendFunc) (SentRequest, error) {
	if channel == "" || contact == "" {
		return SentRequest{}, errors.New("permission: SendRequest needs a channel and a contact")
	}
	if t.closed() {
		return SentRequest{}, ErrClosed
	}
	now := t.clock.Now().UTC()
	d, err := t.CanRequest(ctx, channel, contact, now)
	if err != nil {
		return SentRequest{}, err
	}
	k, cl, err := t.claimRequest(ctx, channel, contact, now, d)
	if err != nil {
		return SentRequest{}, err
	}
	// ClaimTTL of real time (the tracker's clock may be a mock, whose
	// instants no context deadline can use).
	sctx, cancel := context.WithTimeout(ctx, ClaimTTL)
	wamid, err := send(sctx)
	cancel()
	if err == nil && wamid == "" {
		err = errors.New("send returned no message id")
	}
	if err != nil {
		t.releaseClaim(k, cl)
		return SentRequest{}, fmt.Errorf("permission: sending the request: %w", err)
	}
	sentAt := t.clock.Now().UTC()
	out := SentRequest{Channel: channel, Contact: k.Contact, RequestID: wamid, SentAt: sentAt, LapsesAt: sentAt.Add(PendingTTL)}
	_, err = t.Record(context.WithoutCancel(ctx), Event{Type: EventRequestSent, Channel: channel, Contact: k.Contact, ID: wamid, At: sentAt, Origin: OriginHost})
	if err != nil {
		return out, fmt.Errorf("permission: request %s sent but not recorded (the claim lapses at %s): %w", wamid, stamp(fromNs(cl.until)), err)
	}
	t.releaseClaim(k, cl)
	return out, nil
}

// personInTx reads the person an identifier names inside a transaction,
// following an alias; a person never seen is a new, empty state.
func personInTx(ctx context.Context, tx store.Tx, k store.Key) (store.Key, pairState, store.State, error) {
	for range 2 {
		st, err := tx.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return k, pairState{}, st, err
		}
		if st.Data == nil {
			return k, pairState{}, st, fmt.Errorf("permission: %s/%s has no cached state: open a new Tracker on this store to rebuild it", k.Channel, k.Contact)
		}
		kind, s, alias, err := decodeRecord(st.Data, k.Contact)
		if err != nil {
			return k, pairState{}, st, fmt.Errorf("%s/%s: %w", k.Channel, k.Contact, err)
		}
		if kind == recordAlias {
			k.Contact = alias
			continue
		}
		return k, s, st, nil
	}
	return k, pairState{floor: none, wake: none}, store.State{}, nil
}

// claimRequest writes a claim on the person unless another sender holds
// one, a request is pending, or the limits forbid a request at now (d, and
// the cached state's budget, read under the transaction's lock).
func (t *Tracker) claimRequest(ctx context.Context, channel, contact string, now time.Time, d Decision) (store.Key, requestClaim, error) {
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return store.Key{}, requestClaim{}, err
	}
	n := now.UnixNano()
	cl := requestClaim{token: hex.EncodeToString(tok[:]), at: n, until: n + int64(ClaimTTL)}
	var k store.Key
	err := t.store.Update(ctx, func(tx store.Tx) error {
		var s pairState
		var st store.State
		var err error
		k, s, st, err = personInTx(ctx, tx, store.Key{Channel: channel, Contact: NormalizeContact(contact)})
		if err != nil {
			return err
		}
		if c := s.claim; c.token != "" && c.until > n {
			return &RequestError{Err: ErrRequestInFlight, Decision: d, ClaimedAt: fromNs(c.at), ClaimedUntil: fromNs(c.until)}
		}
		if p := s.pendingAt(n); p.ok {
			l := pendListed{ok: true, contact: k.Contact, id: p.id, sent: p.sent, lapses: p.lapses}
			l.waID, l.userID = s.phoneAndUser()
			return &RequestError{Err: ErrPending, Decision: d, Pending: l.entry(channel)}
		}
		if b := s.budget(n, t.cfg.Limits); !d.Allowed || b.RequestsLeft == 0 {
			if d.Allowed { // recorded since CanRequest read the ledger
				d = Explanation{Limits: b}.RequestDecision()
			}
			return &RequestError{Err: ErrRequestNotAllowed, Decision: d}
		}
		if len(s.ids) == 0 {
			s.addIdent(k.Contact, n) // a person never seen: first seen now
		}
		s.claim = cl
		return tx.Put(ctx, k, store.State{Data: encodeState(&s, k.Contact), Revision: st.Revision})
	})
	return k, cl, err
}

// releaseClaim clears the claim if it is still cl (the person may have
// moved to another contact meanwhile: follow it). A failure is logged; the
// claim lapses by itself.
func (t *Tracker) releaseClaim(k store.Key, cl requestClaim) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.WriteTimeout)
	defer cancel()
	err := t.store.Update(ctx, func(tx store.Tx) error {
		k, s, st, err := personInTx(ctx, tx, k)
		if err != nil || s.claim != cl {
			return err
		}
		s.claim = requestClaim{}
		return tx.Put(ctx, k, store.State{Data: encodeState(&s, k.Contact), Revision: st.Revision})
	})
	if err != nil && !t.closed() {
		t.log.Warn("callready: releasing a request claim failed; it lapses by itself", "channel", k.Channel, "contact", k.Contact, "err", err)
	}
}

// requestClaim is a request being sent: whoever holds the claim (token)
// calls Meta; it lapses at until so a sender that died never blocks the
// person.
type requestClaim struct {
	token     string
	at, until int64
}
