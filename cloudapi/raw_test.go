package cloudapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// newRawServer serves h on loopback, for answers the fake does not give.
func newRawServer(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
