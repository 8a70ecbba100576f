package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// SignatureHeader is the header Meta signs every POST with.
const SignatureHeader = "X-Hub-Signature-256"

const signaturePrefix = "sha256="

// Signature errors. The handler answers 401 to ErrMissingSignature and 403
// to ErrBadSignature.
var (
	// ErrMissingSignature: no X-Hub-Signature-256 header, or an empty one.
	ErrMissingSignature = errors.New("webhook: missing " + SignatureHeader)
	// ErrBadSignature: the header is not "sha256=" + 64 hex digits, or the
	// digest does not match the body.
	ErrBadSignature = errors.New("webhook: bad " + SignatureHeader)
)

// Sign returns the X-Hub-Signature-256 value Meta would send for body:
// "sha256=" + lowercase hex HMAC-SHA256(body, secret). Sign the exact bytes
// sent.
func Sign(body []byte, secret string) string {
	return signaturePrefix + hex.EncodeToString(mac(body, secret))
}

// Verify checks header, the X-Hub-Signature-256 value, against body in
// constant time. The "sha256=" prefix is required as Meta sends it; the hex
// digits may be upper or lower case, since both spell the same digest (Meta
// sends lower case).
func Verify(body []byte, header, secret string) error {
	if header == "" {
		return ErrMissingSignature
	}
	hexSum, ok := strings.CutPrefix(header, signaturePrefix)
	if !ok || len(hexSum) != 2*sha256.Size {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return ErrBadSignature
	}
	if !hmac.Equal(got, mac(body, secret)) {
		return ErrBadSignature
	}
	return nil
}

func mac(body []byte, secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return m.Sum(nil)
}
