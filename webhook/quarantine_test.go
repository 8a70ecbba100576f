package webhook_test

import (
	"testing"

	"github.com/callready/callready/webhook"
	"github.com/callready/callready/webhook/webhooktest"
)

func TestMemoryQuarantine(t *testing.T) {
	webhooktest.RunQuarantine(t, func(t *testing.T, cfg webhook.QuarantineConfig) webhook.Quarantine {
		return webhook.NewMemoryQuarantine(cfg)
	})
}

func TestQuarantineDefaults(t *testing.T) {
	c := webhook.QuarantineConfig{}.WithDefaults()
	if c.Retention != webhook.DefaultQuarantineRetention || c.Clock == nil {
		t.Fatalf("defaults: %+v", c)
	}
	if webhook.DefaultQuarantineRetention < 7*24*3600e9 {
		t.Fatal("the default retention must outlast Meta's 7 days of retries")
	}
	if webhook.QuarantinePageSize(0) != webhook.DefaultQuarantinePage || webhook.QuarantinePageSize(1e6) != webhook.MaxQuarantinePage || webhook.QuarantinePageSize(3) != 3 {
		t.Fatal("page sizes")
	}
}
