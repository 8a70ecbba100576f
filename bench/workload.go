package bench

import (
	"strconv"
	"time"
)

// T0 is the simulated "now" of every workload: all loaded grants are active
// at T0 and expire between T0+1h and T0+168h.
var T0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// Channels of a workload: HotChannel holds 80% of the grants, the four
// others 5% each. RecordChannel receives the grants recorded during the
// record measurement.
const (
	HotChannel    = "106540352242922"
	RecordChannel = "106540352249999"
	PageSize      = 50
	permStride    = 1_000_003 // prime: i*permStride mod n permutes 0..n-1 for n not a multiple of it
)

var coldChannels = [...]string{"106540352240001", "106540352240002", "106540352240003", "106540352240004"}

// Channels lists every channel a workload loads, hot first.
func Channels() []string { return append([]string{HotChannel}, coldChannels[:]...) }

// Grant is one temporary permission: (Channel, Contact) may be called
// until ExpiresAt.
type Grant struct {
	Channel   string
	Contact   string
	GrantedAt time.Time
	ExpiresAt time.Time
}

// Workload is N active grants. Grant(i) is a pure function of i, and the
// contact string is allocated afresh on every call, so an implementation
// that keeps it owns its memory (memory per grant is not understated by
// strings shared with the generator). Expiries are distinct and in an order
// unrelated to i, so an implementation cannot get the expiry order for free
// from insertion order.
type Workload struct{ N int }

// span is the window the N expiries are spread over.
const span = 167 * time.Hour

// Grant returns grant i of the workload, 0 <= i < N.
func (w Workload) Grant(i int) Grant {
	ch := HotChannel
	if r := i % 20; r >= 16 {
		ch = coldChannels[r-16]
	}
	pos := int64(uint64(i) * permStride % uint64(w.N)) // distinct positions 0..N-1
	// Whole microseconds (store.Precision, what the tracker keeps), still
	// distinct for N up to span/1µs.
	step := int64(span) / int64(w.N) / int64(time.Microsecond) * int64(time.Microsecond)
	exp := T0.Add(time.Hour + time.Duration(pos*step))
	return Grant{
		Channel:   ch,
		Contact:   "1650" + strconv.Itoa(10_000_000+i),
		GrantedAt: T0.Add(-time.Duration(i%3600) * time.Second),
		ExpiresAt: exp,
	}
}

// PageNow is the instant pages are listed at: every loaded grant is active.
func PageNow() time.Time { return T0.Add(30 * time.Minute) }

// SweepAt is the instant every loaded grant is due, but no grant recorded
// by RecordGrant is.
func SweepAt() time.Time { return T0.Add(500 * time.Hour) }

// RecordGrant returns the k-th grant recorded into a loaded workload: a new
// contact of RecordChannel that expires after SweepAt.
func RecordGrant(k int) Grant {
	return Grant{
		Channel:   RecordChannel,
		Contact:   "3461" + strconv.Itoa(20_000_000+k),
		GrantedAt: T0,
		ExpiresAt: T0.Add(1000*time.Hour + time.Duration(k)*time.Millisecond),
	}
}

// Row is one line of a callable page.
type Row struct {
	Contact   string
	ExpiresAt int64 // unix ns
}
