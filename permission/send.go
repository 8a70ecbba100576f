package permission

// requestClaim is a request being sent: whoever holds the claim (token)
// calls Meta; it lapses at until so a sender that died never blocks the
// person.
type requestClaim struct {
	token     string
	at, until int64
}
