package cloudapi_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/callready/callready/cloudapi"
	"github.com/callready/callready/cloudapi/cloudapitest"
	"github.com/callready/callready/permission"
)

func TestSettingsFromTheFakesModel(t *testing.T) {
	e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
	ctx := context.Background()

	s, err := e.api.Settings(ctx, channel)
	require.NoError(t, err)
	require.Equal(t, cloudapi.CallingSettings{Status: "ENABLED", CallbackPermissionStatus: "ENABLED", CallIconVisibility: "DEFAULT"}, s.Calling)
	require.Equal(t, permission.CallbackEnabled, s.Calling.Callback())
	w := e.wire.all()
	require.Equal(t, http.MethodGet, w[0].Method)
	require.Equal(t, e.fake.URL()+"/"+cloudapi.DefaultAPIVersion+"/"+channel+"/settings", w[0].URL)
	require.Equal(t, "Bearer "+e.fake.AccessToken(), w[0].Auth)

	for _, tc := range []struct {
		set  string
		want permission.CallbackStatus
	}{
		{"DISABLED", permission.CallbackDisabled},
		{"NOT_SET", permission.CallbackUnknown},
		{"", permission.CallbackUnknown}, // omitted from the answer
		{"ENABLED", permission.CallbackEnabled},
	} {
		e.fake.SetCallingSettings(channel, cloudapitest.CallingSettings{CallbackPermissionStatus: tc.set})
		s, err := e.api.Settings(ctx, channel)
		require.NoError(t, err)
		require.Equal(t, tc.set, s.Calling.CallbackPermissionStatus)
		require.Equal(t, tc.want, s.Calling.Callback(), tc.set)
	}
}

func TestSettingsDefaultFromConfig(t *testing.T) {
	e := newEnv(t, cloudapitest.Config{CallbackPermissionStatus: "NOT_SET"}, cloudapi.Config{})
	s, err := e.api.Settings(context.Background(), channel)
	require.NoError(t, err)
	require.Equal(t, "NOT_SET", s.Calling.CallbackPermissionStatus)
	require.Equal(t, permission.CallbackUnknown, s.Calling.Callback())
}

func TestSettingsErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("unknown number", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
		_, err := e.api.Settings(ctx, "999")
		var apiErr *cloudapi.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, 100, apiErr.Code)
		require.Equal(t, 33, apiErr.Subcode)
	})
	t.Run("empty id", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
		_, err := e.api.Settings(ctx, "")
		require.ErrorIs(t, err, cloudapi.ErrInvalidRequest)
		require.Empty(t, e.wire.all(), "nothing sent")
	})
	t.Run("bad token", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{AccessToken: "wrong"})
		_, err := e.api.Settings(ctx, channel)
		var apiErr *cloudapi.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, 190, apiErr.Code)
	})
	t.Run("no calling object", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
		e.fake.FailNext(cloudapitest.Failure{HTTPStatus: http.StatusOK, Raw: `{"id":"106540352242922"}`})
		_, err := e.api.Settings(ctx, channel)
		require.ErrorIs(t, err, cloudapi.ErrMalformedResponse)
	})
	t.Run("nested and lower-case, tolerated", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{})
		e.fake.FailNext(cloudapitest.Failure{HTTPStatus: http.StatusOK, Raw: `{"settings":{"calling":{"status":"enabled","callback_permission_status":" disabled ","new_field":1}}}`})
		s, err := e.api.Settings(ctx, channel)
		require.NoError(t, err)
		require.Equal(t, "ENABLED", s.Calling.Status)
		require.Equal(t, permission.CallbackDisabled, s.Calling.Callback())
	})
	t.Run("613 backs off on the clock", func(t *testing.T) {
		e := newEnv(t, cloudapitest.Config{}, cloudapi.Config{InitialBackoff: 2 * time.Second})
		e.fake.RateLimitNext(1, 0)
		done := make(chan error, 1)
		go func() {
			s, err := e.api.Settings(ctx, channel)
			if err == nil && s.Calling.Callback() != permission.CallbackEnabled {
				err = errors.New("wrong setting after retry")
			}
			done <- err
		}()
		require.Equal(t, 2*time.Second, <-e.waits)
		e.clk.Add(2 * time.Second)
		require.NoError(t, <-done)
		require.Len(t, e.wire.all(), 2)
	})
}
