package cloudapitest

import (
	"slices"
	"time"
)

// RecordRequest counts a permission request sent to the user known by id
// on channel at at, without a message: a request sent before the fake
// started, or by a simulation that writes history (the reference server's
// demo). It counts against the request limits as a send would, unless a
// connected call since restarted the windows. The user is registered if
// unknown.
func (s *Server) RecordRequest(channel, id string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.byID[id]
	if u == nil {
		u = s.addUserLocked(identify(id))
	}
	p := s.pairLocked(channel, u)
	if at.Before(p.resetAt) {
		return
	}
	i, _ := slices.BinarySearchFunc(p.requests, at, func(a, b time.Time) int { return a.Compare(b) })
	p.requests = slices.Insert(p.requests, i, at)
}
