package main

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/callready/callready/cloudapi/cloudapitest"
	"github.com/callready/callready/permission"
)

// In demo mode Meta's side is cloudapitest's fake. mirrorDemoMeta keeps
// the fake's model in step with what the simulated webhooks told the
// tracker, except for a few contacts whose webhook "got lost" (demoDrift),
// so "Check with Meta" has something to correct.

// demoDriftKind is what the fake does differently for a contact's grant.
type demoDriftKind int

const (
	demoNoDrift         demoDriftKind = iota
	demoRevokedAtMeta                 // the user revoked; the webhook was lost
	demoPermanentAtMeta               // the user made it permanent; the webhook was lost
	demoShorterAtMeta                 // Meta's expiry is a day earlier than the webhook said
)

// demoDrift picks, from the contact id, one contact in twelve for each
// kind of drift.
func demoDrift(contact string) demoDriftKind {
	h := fnv.New32a()
	h.Write([]byte(contact))
	switch h.Sum32() % 12 {
	case 0:
		return demoRevokedAtMeta
	case 1:
		return demoPermanentAtMeta
	case 2:
		return demoShorterAtMeta
	}
	return demoNoDrift
}

// demoMetaRequest tells the demo's fake Meta of a permission request the
// demo recorded (with a past time, as the demo writes history), so Meta's
// request limits agree with the tracker's.
func (s *server) demoMetaRequest(channel, contact string, at time.Time) {
	if f := s.opts.Meta.demoFake; f != nil {
		f.RecordRequest(channel, contact, at)
	}
}

// mirrorDemoMeta follows the tracker's changes after revision after (from
// mirrorDemoList) into the fake until ctx ends; a negative after lists
// first.
func mirrorDemoMeta(ctx context.Context, s *server, fake *cloudapitest.Server, after int64, log *slog.Logger) {
	for ctx.Err() == nil {
		if after < 0 {
			rev, err := mirrorDemoList(ctx, s, fake)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, permission.ErrClosed) {
					log.Warn("demo: mirroring the lists to the fake Meta API", "err", err)
				}
				if !sleepCtx(ctx, time.Second) {
					return
				}
				continue
			}
			after = rev
		}
		sub, err := s.tracker.Subscribe(permission.SubscribeOptions{After: after})
		if err != nil {
			return // closed
		}
		for {
			c, err := sub.Next(ctx)
			if err != nil {
				sub.Close()
				if errors.Is(err, permission.ErrClosed) || ctx.Err() != nil {
					return
				}
				if errors.Is(err, permission.ErrResync) {
					after = -1 // re-list
				}
				break
			}
			after = c.Revision
			mirrorDemoChange(fake, c, s.clock.Now())
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// mirrorDemoList sets the fake's permission of every listed contact of the
// demo channels and returns the revision the listing reflects.
func mirrorDemoList(ctx context.Context, s *server, fake *cloudapitest.Server) (int64, error) {
	rev := s.tracker.Revision()
	for _, ch := range demoChannels {
		q := permission.Query{Limit: permission.MaxPageSize}
		for {
			page, err := s.tracker.Eligible(ctx, ch.id, q)
			if err != nil {
				return 0, err
			}
			for _, e := range page.Entries {
				mirrorDemoChange(fake, permission.Change{Type: permission.Granted, Entry: e}, s.clock.Now())
			}
			if page.NextCursor == "" {
				break
			}
			q.Cursor = page.NextCursor
		}
	}
	return rev, nil
}

// mirrorDemoChange applies one change to the fake. Corrections the
// reconciler made (Source reconcile) are Meta's own answer: they are
// copied as they are, so a check finds a drift once.
func mirrorDemoChange(fake *cloudapitest.Server, c permission.Change, now time.Time) {
	e := c.Entry
	switch c.Type {
	case permission.Revoked:
		_ = fake.SetPermission(e.Channel, e.Contact, cloudapitest.Permission{Status: "no_permission"})
		return
	case permission.Granted, permission.Extended:
	default:
		return // expiries happen at the fake by themselves; budget updates are not permissions
	}
	p := cloudapitest.Permission{Status: "temporary", ExpiresAt: e.ExpiresAt}
	if e.Kind == permission.Permanent {
		p = cloudapitest.Permission{Status: "permanent"}
	}
	if e.Source != permission.SourceReconcile {
		switch demoDrift(e.Contact) {
		case demoRevokedAtMeta:
			p = cloudapitest.Permission{Status: "no_permission"}
		case demoPermanentAtMeta:
			p = cloudapitest.Permission{Status: "permanent"}
		case demoShorterAtMeta:
			if p.Status == "temporary" && e.ExpiresAt.Sub(now) > 36*time.Hour {
				p.ExpiresAt = e.ExpiresAt.Add(-24 * time.Hour)
			}
		}
	}
	_ = fake.SetPermission(e.Channel, e.Contact, p)
}
