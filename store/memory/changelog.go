package memory

import "github.com/callready/callready/store"

// changeLog is the ring of the newest change-log entries. It holds
// Config.Retention of them whatever the store's size, so each is kept
// compact: instants as Unix nanoseconds, as the ledger keeps them, rather
// than 24-byte time.Time values, and the three strings of closed sets (type,
// kind, source) as numbers, 152 bytes against store.Change's 256. The
// revisions of a ring are contiguous, so an entry keeps none.
type changeLog struct {
	entries []logEntry // oldest at head once the ring is full
	head    int
	limit   int   // the ring's length once full (Retention)
	last    int64 // revision of the newest entry: the store's revision (0 for none)
	names   names
}

type logEntry struct {
	key                        store.Key
	waID, userID               string
	replaces                   []string
	at, granted, expires, wake int64 // unix ns, zeroTime for the zero time (nanos)
	callsLeft, streak          int
	typ, kind, source          uint32 // numbers in names
}

// names gives each string of the closed sets a number. The tracker writes
// a handful of distinct ones; every one is kept for the store's life.
type names struct {
	number map[string]uint32
	list   []string
}

func (n *names) of(s string) uint32 {
	if i, ok := n.number[s]; ok {
		return i
	}
	if n.number == nil {
		n.number = make(map[string]uint32)
	}
	i := uint32(len(n.list))
	n.number[s] = i
	n.list = append(n.list, s)
	return i
}

// add appends c, whose revision follows the newest entry's.
func (l *changeLog) add(c *store.Change) {
	e := logEntry{key: c.Key, waID: c.WaID, userID: c.UserID, replaces: c.Replaces,
		at: nanos(c.At), granted: nanos(c.GrantedAt), expires: nanos(c.ExpiresAt), wake: nanos(c.Wake),
		callsLeft: c.CallsLeft, streak: c.UnansweredStreak,
		typ: l.names.of(c.Type), kind: l.names.of(c.Kind), source: l.names.of(c.Source)}
	l.last = c.Revision
	if len(l.entries) < l.limit {
		if len(l.entries) == cap(l.entries) { // grow by doubling, to the ring's length at most
			grown := make([]logEntry, len(l.entries), min(max(64, 2*cap(l.entries)), l.limit))
			copy(grown, l.entries)
			l.entries = grown
		}
		l.entries = append(l.entries, e)
		return
	}
	l.entries[l.head] = e
	l.head = (l.head + 1) % l.limit
}

// oldest returns the revision of the oldest entry held (last+1 when none).
func (l *changeLog) oldest() int64 { return l.last - int64(len(l.entries)) + 1 }

// change returns the i-th entry from the oldest.
func (l *changeLog) change(i int) store.Change {
	e := &l.entries[(l.head+i)%len(l.entries)]
	return store.Change{Revision: l.oldest() + int64(i), Type: l.names.list[e.typ], Key: e.key,
		At: fromNanos(e.at), Kind: l.names.list[e.kind], Source: l.names.list[e.source],
		GrantedAt: fromNanos(e.granted), ExpiresAt: fromNanos(e.expires),
		CallsLeft: e.callsLeft, UnansweredStreak: e.streak, WaID: e.waID, UserID: e.userID,
		Replaces: e.replaces, Wake: fromNanos(e.wake)}
}
