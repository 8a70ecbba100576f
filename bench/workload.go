package bench

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// T0 is the simulated "now" of every workload: all loaded grants are active
// at T0 and expire between T0+1h and T0+168h.
var T0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// Channels of a workload: HotChannel holds 80% of the grants, the four
// others 5% each.
const (
	HotChannel = "106540352242922"
	PageSize   = 50
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
	ch := channelOf(i)
	pos := int64(permute(uint64(i), uint64(w.N))) // distinct positions 0..N-1, in random order
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

// PerChannel returns how many grants each channel holds.
func (w Workload) PerChannel() map[string]int {
	out := map[string]int{}
	for i := range w.N {
		out[channelOf(i)]++
	}
	return out
}

// channelOf is grant i's channel: 16 of every 20 on the hot one.
func channelOf(i int) string {
	if r := i % 20; r >= 16 {
		return coldChannels[r-16]
	}
	return HotChannel
}

// PageNow is the instant pages are listed at: every loaded grant is active.
func PageNow() time.Time { return T0.Add(30 * time.Minute) }

// SweepAt is the instant every loaded grant is due, and every grant
// recorded by RecordGrant or Regrant too.
func SweepAt() time.Time { return T0.Add(500 * time.Hour) }

// mix is splitmix64: a fixed pseudo-random function of k, so every
// alternative records the same sequence.
func mix(k uint64) uint64 {
	k += 0x9e3779b97f4a7c15
	k = (k ^ (k >> 30)) * 0xbf58476d1ce4e5b9
	k = (k ^ (k >> 27)) * 0x94d049bb133111eb
	return k ^ (k >> 31)
}

// permute maps i, 0 <= i < n, to a distinct position in 0..n-1, in an
// order that looks random: a Feistel network over the smallest power of
// four at or above n, each result outside 0..n-1 mapped again until it
// lands inside (cycle walking, which keeps it a permutation). A stride
// (i*p mod n) is not random: with p = 1,000,003 and n = 10^6 it is 3i mod
// n, three rising passes, which fill a B-tree unlike a random order.
func permute(i, n uint64) uint64 {
	half := uint(1)
	for 1<<(2*half) < n {
		half++
	}
	mask := uint64(1)<<half - 1
	for {
		l, r := i>>half, i&mask
		for round := range uint64(4) {
			l, r = r, l^(mix(r+round<<56)&mask)
		}
		i = l<<half | r
		if i < n {
			return i
		}
	}
}

// randomIn returns a pseudo-random duration in [0, d), whole microseconds.
func randomIn(k uint64, d time.Duration) time.Duration {
	return time.Duration(mix(k)%uint64(d/time.Microsecond)) * time.Microsecond
}

// RecordGrant returns the k-th new grant recorded into a loaded workload:
// a new contact, on the five loaded channels in turn, expiring at a
// pseudo-random instant inside the loaded span (T0+1h … T0+168h), so it
// lands among the loaded grants in every index (not at its end) and is due
// at SweepAt like them.
func RecordGrant(k int) Grant {
	chs := Channels()
	return Grant{
		Channel:   chs[k%len(chs)],
		Contact:   "3461" + strconv.Itoa(20_000_000+k),
		GrantedAt: T0,
		ExpiresAt: T0.Add(time.Hour + randomIn(uint64(k), span)),
	}
}

// regrantStride is prime and coprime to every workload size used (10^k,
// 997, 1000): (k*regrantStride) mod N visits distinct grants for k < N.
const regrantStride = 104_729

// Regrant returns the k-th re-grant recorded into a loaded workload: an
// existing contact (grant (k*regrantStride) mod N, distinct for k < N)
// granted again at T0 with an expiry 1h … 168h later than its current one,
// so the re-grant extends it (the longer grant is the one every
// alternative shows) and moves it to a pseudo-random place among the
// others; still due at SweepAt.
func (w Workload) Regrant(k int) Grant {
	g := w.Grant(int(uint64(k) * regrantStride % uint64(w.N)))
	g.GrantedAt = T0
	g.ExpiresAt = g.ExpiresAt.Add(time.Hour + randomIn(uint64(k)+1<<40, span))
	return g
}

// DeepPage is a page at a cursor: the PageSize grants of Channel listed
// right after the grant After (keyset order: expiry, then contact).
type DeepPage struct {
	Channel string
	After   Row
	Pos     int // index in the channel's listing of the page's first row
}

// DeepPages returns count pages at pseudo-random page boundaries of the
// loaded listings (as of PageNow), channels rotating: page i is on
// Channels()[i%5] (channels too small for a page after the first are left
// out of the rotation). Every page has PageSize rows.
func (w Workload) DeepPages(count int) []DeepPage {
	type pos struct {
		exp int64
		i   int32
	}
	byCh := map[string][]pos{}
	for i := range w.N {
		g := w.Grant(i)
		byCh[g.Channel] = append(byCh[g.Channel], pos{g.ExpiresAt.UnixNano(), int32(i)})
	}
	var chs []string
	for _, ch := range Channels() {
		l := byCh[ch]
		if len(l) < 2*PageSize {
			continue
		}
		slices.SortFunc(l, func(a, b pos) int {
			if a.exp != b.exp {
				return cmp.Compare(a.exp, b.exp)
			}
			return strings.Compare(w.Grant(int(a.i)).Contact, w.Grant(int(b.i)).Contact)
		})
		chs = append(chs, ch)
	}
	if len(chs) == 0 {
		return nil
	}
	out := make([]DeepPage, count)
	for k := range out {
		ch := chs[k%len(chs)]
		l := byCh[ch]
		boundaries := (len(l) - PageSize) / PageSize // page starts 50, 100, … with a full page after
		p := PageSize * (1 + int(mix(uint64(k)+1<<50)%uint64(boundaries)))
		prev := l[p-1]
		out[k] = DeepPage{Channel: ch, Pos: p, After: Row{Contact: w.Grant(int(prev.i)).Contact, ExpiresAt: prev.exp}}
	}
	return out
}

// Row is one line of a callable page.
type Row struct {
	Contact   string
	ExpiresAt int64 // unix ns
}
