package webhook

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParseOnePass: Parse's one-pass reading of a well-formed body gives
// exactly what the granular path gives, for every body.
func FuzzParseOnePass(f *testing.F) {
	names, err := filepath.Glob("testdata/fixtures/*.json")
	if err != nil || len(names) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// Nulls and wrong types at each outer level, keys in another case,
	// repeated keys, an entry's time beside a settings change.
	for _, s := range []string{
		`{"object":"whatsapp_business_account","entry":[null,{"changes":null},{"changes":[null,{"field":"messages","value":null}]}]}`,
		`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"1"}},"value":{"metadata":{"display_phone_number":"2"}}}]}],"entry":[{"changes":[{"field":"calls"}]}]}`,
		`{"OBJECT":"whatsapp_business_account","Entry":[{"Changes":[{"Field":"messages","VALUE":{"metadata":{"phone_number_id":"1"},"contacts":[{"wa_id":"5"}]}}]}]}`,
		`{"object":"whatsapp_business_account","entry":[{"time":1767168000,"time":"x","changes":[{"field":"account_settings_update","value":{"phone_number_id":1,"calling":{"callback_permission_status":"ENABLED"}}}]}]}`,
		`{"object":"whatsapp_business_account","entry":{"changes":[]}}`,
		`{"object":"other","entry":[7]}`,
		`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":7}]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotErr := Parse(body)
		want, wantErr := parseGranular(body)
		if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Fatalf("errors differ: one pass %v, granular %v", gotErr, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("batches differ:\none pass %+v\ngranular %+v", got, want)
		}
	})
}
