package permission

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/callready/callready/store"
)

// The write path: one store transaction per batch of requests (group
// commit). Each event is deduplicated against the ledger, resolved to its
// person (joining persons when it shows identifiers of several), folded
// into the person's state and appended to the ledger; then the person's
// entry is compared with the one last listed and the change between them
// appended to the change log.

// pending is one person being written by a batch.
type pending struct {
	key        store.Key // the person's contact; it moves as identifiers join
	state      pairState
	revision   int64
	dirty      bool
	aliasDirty bool            // the person's other identifiers must (re)point to key
	replaced   []replacedEntry // entries this person was listed under another contact
	into       *pending        // merged into this one (set on persons that joined another)
}

// replacedEntry is an entry listed under a contact that now names another
// person's identifier (two persons joined, or the person's contact moved).
type replacedEntry struct {
	contact string
	listed  listed
}

// rawRecord is what one pair key held when the batch read it.
type rawRecord struct {
	kind     int
	state    pairState
	alias    string
	revision int64
	exists   bool
	data     bool
}

// commit writes a batch in one store transaction: the new ledger events,
// the states folded from them and the change-log entries they cause. Then
// it applies the committed changes to the index, through the same path as
// another tracker's changes. Only one commit runs at a time.
func (t *Tracker) commit(ctx context.Context, batch []*request) { t.commitRows(ctx, batch, false) }

// commitRows is commit; rowsApart calls Config.HostRows once per request
// rather than once for the batch (see hostwrite.go).
func (t *Tracker) commitRows(ctx context.Context, batch []*request, rowsApart bool) {
	wctx := newWriteContext(ctx, t.cfg.WriteTimeout)
	defer wctx.stop()
	w := &t.writer
	defer w.reset()
	err := t.store.Update(wctx, func(tx store.Tx) error {
		w.reset() // Update may run fn again
		w.t, w.tx, w.ctx = t, tx, wctx
		if err := w.write(batch, &w.appended); err != nil {
			return err
		}
		return t.runHostWrites(wctx, tx, batch, rowsApart)
	})
	if err != nil && t.retryHostWrites(ctx, batch, err) {
		return
	}
	appended := w.appended
	if err != nil {
		for _, r := range batch {
			r.changes, r.err = nil, err
			close(r.done)
		}
		return
	}
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	if t.cfg.Shared || (len(appended) > 0 && appended[0].Revision != t.Revision()+1) {
		// Other trackers write to the store too, or revisions this
		// tracker never applied were committed (a write reported as failed
		// that the store made anyway): follow the log up to this batch,
		// then the batch, so nothing committed stays out of the list.
		if err := t.catchUpWith(wctx, appended); err == nil {
			return
		} else if t.cfg.Shared {
			t.log.Warn("callready: reading the change log after a write failed; the follower will retry", "err", err)
			return
		}
		t.log.Warn("callready: reading the change log over a revision gap failed", "err", err)
	}
	t.followMu.Lock()
	defer t.followMu.Unlock()
	t.applyChanges(appended)
}

// batchWriter folds one batch inside a store transaction. The Tracker
// keeps one and reuses its maps and slices from commit to commit (only one
// commit runs at a time), so that a commit allocates little beyond what it
// stores.
type batchWriter struct {
	t       *Tracker
	tx      store.Tx
	ctx     context.Context
	pairs   map[store.Key]*pending // every identifier key of a person read so far → its person
	raw     map[store.Key]int      // → rawRecs (rawRecord is too big for a map to hold inline)
	rawRecs []rawRecord
	order   []*pending
	chans   map[string]*chanPending

	chanFree []*chanPending // recycled by reset

	appended []store.Change // what the batch appended to the change log

	// Scratch space of write and resolve.
	refs    []store.EventRef
	keys    []store.Key
	seen    map[store.EventRef]bool
	uniq    map[store.Key]struct{}
	ids     []string
	persons []*pending
	slab    [][]pending // the batch's persons, in chunks that never move
	mem     stateMem    // the grants and identifiers of the states the batch decoded
	used    int
	joined  bool // some persons of the batch joined into one
	mapsFor int  // how many keys pairs, raw and seen were sized for (readyMaps)
}

const slabChunk = 16

// readyMaps empties the batch's maps for n keys. Clearing a map costs as
// much as its capacity, which never shrinks, and growing one rehashes it
// at every doubling: maps a batch of about this size (or a smaller one)
// grew are cleared and kept, so a sweep's batches of a thousand keys
// reuse theirs, while maps far larger than n are made again at n's size,
// so that one huge batch does not slow every small one after it.
func (w *batchWriter) readyMaps(n int) {
	if w.pairs == nil || w.mapsFor > max(64, 4*n) {
		w.pairs, w.raw = make(map[store.Key]*pending, n), make(map[store.Key]int, n)
		w.seen = make(map[store.EventRef]bool, n)
		w.uniq = nil // uniqueKeys makes it at its first use, and clears it at each
		w.mapsFor = n
		return
	}
	clear(w.pairs)
	clear(w.raw)
	clear(w.seen)
	w.mapsFor = max(w.mapsFor, n)
}

// newPending returns a zeroed person of this batch.
func (w *batchWriter) newPending() *pending {
	i, j := w.used/slabChunk, w.used%slabChunk
	if i == len(w.slab) {
		w.slab = append(w.slab, make([]pending, slabChunk))
	}
	w.used++
	return &w.slab[i][j]
}

// reset forgets the batch, keeping the buffers (cleared, so they hold no
// pointers into it).
func (w *batchWriter) reset() {
	w.t, w.tx, w.ctx = nil, nil, nil
	clear(w.rawRecs)
	w.rawRecs = w.rawRecs[:0]
	for _, c := range w.chans {
		c.state = channelState{}
		w.chanFree = append(w.chanFree, c)
	}
	clear(w.chans)
	for i := 0; i < w.used; i += slabChunk {
		clear(w.slab[i/slabChunk][:min(slabChunk, w.used-i)])
	}
	w.used, w.joined = 0, false
	w.mem.reset()
	clear(w.order)
	clear(w.appended)
	clear(w.refs)
	clear(w.keys)
	clear(w.ids)
	clear(w.persons)
	w.order, w.appended, w.refs, w.keys, w.ids, w.persons = w.order[:0], w.appended[:0], w.refs[:0], w.keys[:0], w.ids[:0], w.persons[:0]
}

// chanPending is a channel's own state being written by a batch.
type chanPending struct {
	state channelState
	dirty bool
}

// channel returns the channel's own state (its callback settings),
// reading it once per batch.
func (w *batchWriter) channel(name string) (*chanPending, error) {
	if c := w.chans[name]; c != nil {
		return c, nil
	}
	st, err := w.tx.Get(w.ctx, store.Key{Channel: name})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return w.addChannel(name, st)
}

func (w *batchWriter) addChannel(name string, st store.State) (*chanPending, error) {
	var c *chanPending
	if n := len(w.chanFree); n > 0 {
		c, w.chanFree = w.chanFree[n-1], w.chanFree[:n-1]
	} else {
		c = new(chanPending)
	}
	c.dirty = false
	if err := c.state.decode(st.Data); err != nil {
		w.chanFree = append(w.chanFree, c)
		return nil, fmt.Errorf("channel %s: %w", name, err)
	}
	if w.chans == nil {
		w.chans = make(map[string]*chanPending)
	}
	w.chans[name] = c
	return c, nil
}

func (w *batchWriter) write(batch []*request, appended *[]store.Change) error {
	refs, keys := w.refs[:0], w.keys[:0]
	for _, r := range batch {
		for i := range r.events {
			le := &r.events[i]
			refs = append(refs, store.EventRef{Channel: le.Key.Channel, Dedupe: le.Dedupe})
			keys = append(keys, le.Key, store.Key{Channel: le.Key.Channel})
			for _, a := range le.Aliases {
				keys = append(keys, store.Key{Channel: le.Key.Channel, Contact: a})
			}
		}
		keys = append(keys, r.also...)
		keys = append(keys, r.wake...)
	}
	w.refs, w.keys = refs, keys
	w.readyMaps(len(keys))
	seen := w.seen
	if len(refs) > 0 {
		known, err := w.tx.Known(w.ctx, refs)
		if err != nil {
			return err
		}
		for ref := range known {
			seen[ref] = true
		}
	}
	if err := w.prefetch(keys); err != nil {
		return err
	}
	for _, r := range batch {
		r.changes = r.changes[:0]
		now := r.now.UnixNano()
		for i := range r.events {
			le := &r.events[i]
			ref := store.EventRef{Channel: le.Key.Channel, Dedupe: le.Dedupe}
			if seen[ref] {
				continue // a redelivery: recorded already
			}
			seen[ref] = true
			if le.Key.Contact == "" { // the channel's own event: a callback setting
				c, err := w.channel(le.Key.Channel)
				if err != nil {
					return err
				}
				if c.state.fold(le.At.UnixNano(), CallbackStatus(le.Source)) {
					c.dirty = true
				}
				if err := w.tx.AppendEvent(w.ctx, *le); err != nil {
					return err
				}
				continue
			}
			w.ids = append(append(w.ids[:0], le.Key.Contact), le.Aliases...)
			p, err := w.resolve(le.Key.Channel, w.ids)
			if err != nil {
				return err
			}
			n := len(p.state.ids)
			p.state.fold(recOf(le, -1))
			p.state.compact(now)
			p.dirty = true
			if len(p.state.ids) != n {
				p.aliasDirty = true // a new identifier: point it at the person
			}
			w.rekey(p)
			if err := w.settle(r, p, le.At.UnixNano(), appended); err != nil {
				return err
			}
			le.Revision = p.revision
			if err := w.tx.AppendEvent(w.ctx, *le); err != nil {
				return err
			}
		}
		for _, k := range r.also {
			p, err := w.person(k)
			if err != nil {
				return err
			}
			if p == nil {
				continue
			}
			p.state.compact(now)
			if err := w.settle(r, p, now, appended); err != nil {
				return err
			}
		}
		for _, k := range r.wake {
			p, err := w.person(k)
			if err != nil {
				return err
			}
			if p == nil || p.state.wake == none || p.state.wake > now {
				continue // handled by another tracker already
			}
			at := p.state.wake
			p.state.compact(now)
			if err := w.settle(r, p, at, appended); err != nil {
				return err
			}
		}
	}
	for _, p := range w.order {
		if p.into != nil {
			continue // its identifiers are now the other person's
		}
		if p.dirty {
			if err := w.tx.Put(w.ctx, p.key, store.State{Data: encodeState(&p.state, p.key.Contact), Revision: p.revision}); err != nil {
				return err
			}
		}
		if p.aliasDirty {
			for _, x := range p.state.ids {
				if x.id == p.key.Contact {
					continue
				}
				if err := w.tx.Put(w.ctx, store.Key{Channel: p.key.Channel, Contact: x.id}, store.State{Data: encodeAlias(p.key.Contact)}); err != nil {
					return err
				}
			}
		}
	}
	for name, c := range w.chans {
		if c.dirty {
			if err := w.tx.Put(w.ctx, store.Key{Channel: name}, store.State{Data: encodeChannel(&c.state)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// uniqueKeys returns keys without repeats, in their order, reusing keys'
// array.
func (w *batchWriter) uniqueKeys(keys []store.Key) []store.Key {
	if w.uniq == nil {
		w.uniq = make(map[store.Key]struct{}, len(keys))
	}
	clear(w.uniq)
	out := keys[:0]
	for _, k := range keys {
		if _, dup := w.uniq[k]; !dup {
			w.uniq[k] = struct{}{}
			out = append(out, k)
		}
	}
	return out
}

// prefetch reads keys with GetMany when the transaction can (one round
// trip), and then the persons the aliases among them name. It reuses keys'
// array. A transaction without GetMany reads a key when the batch
// first needs it (load), so keys are only made unique here: a sweep of a
// million pairs on the memory store spent 4% of its time doing it for
// nothing.
func (w *batchWriter) prefetch(keys []store.Key) error {
	gm, ok := w.tx.(store.GetManyTx)
	if !ok {
		return nil
	}
	if keys = w.uniqueKeys(keys); len(keys) < 2 {
		return nil
	}
	for round := 0; round < 2 && len(keys) > 0; round++ {
		got, err := gm.GetMany(w.ctx, keys)
		if err != nil {
			return err
		}
		var targets []store.Key
		for _, k := range keys {
			st, exists := got[k]
			if k.Contact == "" {
				if _, err := w.addChannel(k.Channel, st); err != nil {
					return err
				}
				continue
			}
			rec, err := w.decode(k, st, exists)
			if err != nil {
				return err
			}
			w.remember(k, rec)
			if rec.kind == recordAlias {
				if t := (store.Key{Channel: k.Channel, Contact: rec.alias}); !w.known(t) {
					targets = append(targets, t)
				}
			}
		}
		keys = w.uniqueKeys(targets)
	}
	return nil
}

// decode reads what a key held.
func (w *batchWriter) decode(k store.Key, st store.State, exists bool) (rawRecord, error) {
	if exists && st.Data == nil {
		// Only a migration leaves a stored pair without a cached state,
		// and New rebuilds every such pair before it returns.
		return rawRecord{}, fmt.Errorf("permission: %s/%s has no cached state: open a new Tracker on this store to rebuild it from the ledger", k.Channel, k.Contact)
	}
	kind, s, alias, err := decodeRecordIn(st.Data, k.Contact, &w.mem)
	if err != nil {
		return rawRecord{}, fmt.Errorf("%s/%s: %w", k.Channel, k.Contact, err)
	}
	return rawRecord{kind: kind, state: s, alias: alias, revision: st.Revision, exists: exists}, nil
}

// remember keeps what k held for the batch's later reads.
func (w *batchWriter) remember(k store.Key, rec rawRecord) {
	if w.raw == nil {
		w.raw = make(map[store.Key]int)
	}
	if i, ok := w.raw[k]; ok {
		w.rawRecs[i] = rec
	} else {
		w.raw[k] = len(w.rawRecs)
		w.rawRecs = append(w.rawRecs, rec)
	}
}

// known reports whether the batch read k and found something stored.
func (w *batchWriter) known(k store.Key) bool {
	i, ok := w.raw[k]
	return ok && (w.rawRecs[i].kind != recordNone || w.rawRecs[i].exists)
}

func (w *batchWriter) load(k store.Key) (rawRecord, error) {
	if i, ok := w.raw[k]; ok {
		return w.rawRecs[i], nil
	}
	st, err := w.tx.Get(w.ctx, k)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return rawRecord{}, err
	}
	rec, err := w.decode(k, st, err == nil)
	if err == nil && rec.kind != recordPerson {
		// A person's record becomes a person of the batch (person
		// registers it), which later reads find first: only the others
		// are kept.
		w.remember(k, rec)
	}
	return rec, err
}

// person returns the person an identifier names, nil when none yet.
func (w *batchWriter) person(k store.Key) (*pending, error) {
	for depth := 0; ; depth++ {
		if p := w.pairs[k]; p != nil {
			for p.into != nil {
				p = p.into
			}
			return p, nil
		}
		rec, err := w.load(k)
		if err != nil {
			return nil, err
		}
		switch rec.kind {
		case recordNone:
			return nil, nil
		case recordAlias:
			if depth > 0 {
				return nil, fmt.Errorf("permission: %s/%s: an alias names an alias", k.Channel, k.Contact)
			}
			k = store.Key{Channel: k.Channel, Contact: rec.alias}
			continue
		}
		p := w.newPending()
		p.key, p.state, p.revision = k, rec.state, rec.revision
		if len(p.state.ids) == 0 {
			p.state.addIdent(k.Contact, p.state.floor)
		}
		w.register(p)
		return p, nil
	}
}

// register makes every identifier of p resolve to p in this batch.
func (w *batchWriter) register(p *pending) {
	if w.pairs == nil {
		w.pairs = make(map[store.Key]*pending)
	}
	w.pairs[p.key] = p
	for _, x := range p.state.ids {
		if x.id != p.key.Contact {
			w.pairs[store.Key{Channel: p.key.Channel, Contact: x.id}] = p
		}
	}
	w.order = append(w.order, p)
}

// resolve returns the one person the identifiers name, joining the persons
// they named so far into one (the union of their states), or a new person.
func (w *batchWriter) resolve(channel string, ids []string) (*pending, error) {
	persons := w.persons[:0]
	defer func() { clear(persons); w.persons = persons[:0] }()
	for _, id := range ids {
		p, err := w.person(store.Key{Channel: channel, Contact: id})
		if err != nil {
			return nil, err
		}
		if p != nil && !slices.Contains(persons, p) {
			persons = append(persons, p)
		}
	}
	if len(persons) == 0 {
		p := w.newPending()
		p.key, p.state = store.Key{Channel: channel, Contact: ids[0]}, pairState{floor: none, wake: none}
		w.register(p)
		for _, id := range ids {
			w.pairs[store.Key{Channel: channel, Contact: id}] = p
		}
		return p, nil
	}
	base := persons[0]
	w.joined = w.joined || len(persons) > 1
	for _, o := range persons[1:] {
		base.state.union(&o.state)
		base.replaced = append(base.replaced, o.replaced...)
		base.replaced = append(base.replaced, replacedEntry{o.key.Contact, o.state.listed})
		o.into = base
		base.dirty, base.aliasDirty = true, true
		for _, x := range o.state.ids {
			w.pairs[store.Key{Channel: channel, Contact: x.id}] = base
		}
	}
	for _, id := range ids {
		w.pairs[store.Key{Channel: channel, Contact: id}] = base
	}
	return base, nil
}

// rekey moves a person to the contact its identifiers now choose; the
// entry listed under the old contact is replaced by the new one's.
func (w *batchWriter) rekey(p *pending) {
	c := p.state.contact()
	if c == "" || c == p.key.Contact {
		return
	}
	p.replaced = append(p.replaced, replacedEntry{p.key.Contact, p.state.listed})
	p.state.listed = listed{}
	p.key = store.Key{Channel: p.key.Channel, Contact: c}
	p.dirty, p.aliasDirty = true, true
}

// settle compares the pair's entry at its floor with the one last listed
// and appends the change between them, if any; when only the wake-up
// instant moved it appends a Scheduled change, so every tracker's index
// (this one's included) learns it from the log.
func (w *batchWriter) settle(r *request, p *pending, at int64, appended *[]store.Change) error {
	s := &p.state
	lc := w.t.cfg.Limits
	c, err := w.channel(p.key.Channel)
	if err != nil {
		return err
	}
	s.callbacks, s.confirmedOnly = &c.state, w.t.cfg.ConfirmedCallbacksOnly
	if err := w.settlePending(r, p, appended); err != nil {
		return err
	}
	cur := s.entryAt(s.floor, lc)
	wake := s.wakeAfter(s.floor, lc)
	var replaces []string
	rowReplaced := false
	for _, old := range p.replaced {
		if old.contact == p.key.Contact {
			if old.listed.ok && !s.listed.ok {
				s.listed = old.listed // the row under this contact is the person's now
			}
			continue
		}
		if slices.Contains(replaces, old.contact) {
			continue
		}
		if cur.ok || !old.listed.ok {
			// Its row (if listed) and its wake-up go with the change
			// below: the person is listed under p.key now.
			replaces = append(replaces, old.contact)
			rowReplaced = rowReplaced || old.listed.ok
			continue
		}
		// The joined person is not callable: the old entry ends.
		typ, end, ok := s.ending(old.listed)
		if !ok {
			typ, end = Revoked, at
		}
		if err := w.appendChange(r, p, store.Key{Channel: p.key.Channel, Contact: old.contact}, typ, end, old.listed, listed{}, none, nil, appended); err != nil {
			return err
		}
	}
	p.replaced = nil
	if typ, end, ok := s.split(s.listed, cur, lc); ok {
		if err := w.appendChange(r, p, p.key, typ, end, s.listed, listed{}, wake, nil, appended); err != nil {
			return err
		}
	}
	typ, cat, ok := s.transition(s.listed, cur, at)
	if !ok && rowReplaced {
		typ, cat, ok = Extended, at, true // the same entry, now the only one of the person
	}
	if !ok && len(replaces) > 0 {
		typ, cat, ok = Scheduled, s.floor, true // only identifiers moved: tell the index
	}
	if !ok {
		if wake == s.wake {
			return nil
		}
		typ, cat = Scheduled, s.floor
	}
	entry := cur
	if typ == Revoked || typ == Expired {
		entry = s.listed
	}
	return w.appendChange(r, p, p.key, typ, cat, entry, cur, wake, replaces, appended)
}

// appendChange appends one change about entry under key to the log; when
// key is the person's own, after and wake become its listed entry and
// wake-up instant (for a replaced contact they are unused).
func (w *batchWriter) appendChange(r *request, p *pending, key store.Key, typ ChangeType, cat int64, entry, after listed, wake int64, replaces []string, appended *[]store.Change) error {
	s := &p.state
	sc := store.Change{
		Type: string(typ), Key: key, At: fromNs(cat), Kind: string(entry.kind), Source: string(entry.source),
		GrantedAt: fromNs(entry.granted), CallsLeft: entry.callsLeft, UnansweredStreak: entry.streak,
		WaID: entry.waID, UserID: entry.userID, Replaces: replaces,
	}
	if key == p.key {
		sc.Wake = fromNs(wake)
	}
	if entry.ok && entry.kind == Temporary {
		sc.ExpiresAt = fromNs(entry.expires)
	}
	if !entry.ok {
		sc.GrantedAt = time.Time{}
	}
	rev, err := w.tx.Append(w.ctx, sc)
	if err != nil {
		return err
	}
	sc.Revision = rev
	if key == p.key {
		s.listed, s.wake = after, wake
		p.revision = rev
	}
	p.dirty = true
	*appended = append(*appended, sc)
	r.changes = append(r.changes, fromStore(sc))
	return nil
}
