package sqlstore

// WaitAnalyze waits for the ANALYZE the store started, if any (analyze.go).
func WaitAnalyze(s *Store) { s.an.wg.Wait() }
