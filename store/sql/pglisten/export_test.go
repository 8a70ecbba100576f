package pglisten

// Connects returns how many times the listener connected.
func (s *Store) Connects() int64 { return s.connects.Load() }
