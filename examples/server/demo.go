package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/callready/callready/permission"
	"github.com/callready/callready/webhook/webhooktest"
)

// The demo plays two sides. The users' side arrives the way Meta sends it:
// signed webhook bodies POSTed to the server's own /webhook. The agents'
// side (messages they send, permission requests) is what a CRM records
// itself, so the demo writes it straight to the inbox and the tracker.

type demoChannel struct{ id, display string }

var demoChannels = []demoChannel{
	{"106540352242922", "15550783881"},
	{"106540352299999", "15550783999"},
}

type demoContact struct {
	name, waID string
	ch         demoChannel
}

var demoNames = []string{
	"Sheena Nelson", "Amina Yusuf", "Tomás García", "Priya Raman", "Lukas Becker", "Chloé Martin",
	"Kwame Mensah", "Sofia Rossi", "Daniel Kim", "Fatima Zahra", "Oliver Smith", "Mei Lin",
	"Mateus Silva", "Hannah Müller", "Ravi Patel", "Isabela Costa", "Yusuf Demir", "Emma Johansson",
	"Ana Popescu", "Kenji Watanabe", "Grace Okafor", "Lucas Moreau", "Nadia Haddad", "Ethan Brown",
	"Zanele Dlamini", "Jonas Nielsen", "Camila Rojas", "Arjun Mehta", "Leila Karimi", "Noah Wilson",
	"Aisha Bello", "Marco Bianchi",
}

var demoPrefixes = []string{"1650555", "44770090", "34612", "91981", "4915112", "33612", "23480312", "5511987"}

var demoLines = [][2]string{ // a customer line and the agent's answer
	{"Hi, can someone call me about order ON-12853?", "Of course! May we call you on WhatsApp? Please accept the call request below."},
	{"My delivery is late, what is happening?", "Sorry about that. A colleague can call you to sort it out."},
	{"I'd like to upgrade my plan", "Great, an advisor can walk you through the options by phone."},
	{"Is the store open on Sunday?", "Yes, 10:00 to 16:00. Anything else we can help with?"},
	{"The app keeps logging me out", "Thanks for reporting it. Can we call you to troubleshoot?"},
	{"Please call me after 5pm", "Noted, we'll call you after 5pm."},
	{"Do you deliver to Lisbon?", "We do! Delivery takes 2-3 working days."},
	{"I was charged twice this month", "We're sorry. Billing will call you today to refund it."},
	{"Can I change my appointment to Friday?", "Friday 11:00 is free. Shall we confirm by phone?"},
	{"Thanks for the quick help!", "You're welcome, have a nice day!"},
}

type demo struct {
	s      *server
	url    string
	secret string
	log    *slog.Logger
	rnd    *rand.Rand
	client *http.Client
	people []demoContact
	seq    int
}

func newDemo(s *server, baseURL, secret string, log *slog.Logger) *demo {
	d := &demo{
		s: s, url: baseURL + "/webhook", secret: secret, log: log,
		rnd:    rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)),
		client: &http.Client{Timeout: 10 * time.Second},
	}
	for i, n := range demoNames {
		p := demoPrefixes[i%len(demoPrefixes)]
		wa := p + fmt.Sprintf("%0*d", 12-len(p), 1000+d.rnd.IntN(8999)+i*7)
		// (i/10+i)%2 spreads every story of burst over both channels.
		d.people = append(d.people, demoContact{name: n, waID: wa, ch: demoChannels[(i/10+i)%2]})
	}
	return d
}

// runDemo feeds the server until ctx ends: a burst that fills both
// channels, then one event every few seconds.
func runDemo(ctx context.Context, s *server, baseURL, secret string, log *slog.Logger) {
	d := newDemo(s, baseURL, secret, log)
	if err := d.burst(ctx); err != nil {
		if ctx.Err() == nil {
			log.Error("demo: stopped", "err", err)
		}
		return
	}
	log.Info("demo: initial traffic sent; now one event every few seconds")
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(2500+d.rnd.IntN(3000)) * time.Millisecond):
		}
		if err := d.step(ctx); err != nil && ctx.Err() == nil {
			log.Warn("demo: event failed", "err", err)
		}
	}
}

// burst gives every contact a conversation and a permission story, with
// event times spread over the past week so expiries spread too.
func (d *demo) burst(ctx context.Context) error {
	now := time.Now()
	for i, p := range d.people {
		ago := time.Duration(d.rnd.IntN(6*24*60)+30) * time.Minute
		at := now.Add(-ago)
		if err := d.chat(ctx, p, at); err != nil {
			return err
		}
		at = at.Add(2 * time.Minute)
		var err error
		switch i % 10 {
		case 0, 1, 2: // accepted a request: a week-long grant
			err = d.accept(ctx, p, at, false)
		case 3: // accepted 8 to 10 days ago: expired, on the Re-ask tab
			err = d.accept(ctx, p, now.Add(-time.Duration(8*24*60+d.rnd.IntN(2*24*60))*time.Minute), false)
		case 4: // accepted for good
			err = d.accept(ctx, p, at, true)
		case 5: // called and nobody answered: a callback grant
			err = d.missedCall(ctx, p, at)
		case 6: // declined
			err = d.reject(ctx, p, at)
		case 7: // accepted about a week ago: expires within hours (highlighted)
			err = d.accept(ctx, p, now.Add(-7*24*time.Hour+time.Duration(1+d.rnd.IntN(20))*time.Hour), false)
		case 8: // accepted, then two business calls went unanswered
			if err = d.accept(ctx, p, at, false); err == nil {
				err = d.unansweredCalls(ctx, p, at.Add(5*time.Minute), 2)
			}
		case 9: // a grant that expires within minutes, so a newcomer sees rows vanish
			err = d.shortGrant(ctx, p, now)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// step is one live event.
func (d *demo) step(ctx context.Context) error {
	now := time.Now()
	p := d.people[d.rnd.IntN(len(d.people))]
	switch r := d.rnd.IntN(100); {
	case r < 35:
		return d.chat(ctx, p, now)
	case r < 55:
		return d.accept(ctx, p, now, d.rnd.IntN(5) == 0)
	case r < 68:
		return d.missedCall(ctx, p, now)
	case r < 78:
		return d.shortGrant(ctx, p, now)
	case r < 88:
		return d.reject(ctx, p, now)
	default:
		return d.unansweredCalls(ctx, p, now, 1)
	}
}

func (d *demo) id(prefix string) string {
	d.seq++
	return prefix + "DEMO" + strconv.FormatInt(time.Now().UnixNano(), 36) + strconv.Itoa(d.seq)
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// metaBody is a webhook body as Meta sends it: one change of field with
// one item in its items list (messages, calls, statuses).
func metaBody(ch demoChannel, name, waID, field, items string, item map[string]any) []byte {
	value := map[string]any{
		"messaging_product": "whatsapp",
		"metadata":          map[string]string{"display_phone_number": ch.display, "phone_number_id": ch.id},
		"contacts":          []any{map[string]any{"profile": map[string]string{"name": name}, "wa_id": waID}},
		items:               []any{item},
	}
	body, err := json.Marshal(map[string]any{
		"object": "whatsapp_business_account",
		"entry":  []any{map[string]any{"id": "102290129340398", "changes": []any{map[string]any{"field": field, "value": value}}}},
	})
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return body
}

// post sends one change as Meta would: signed, over HTTP.
func (d *demo) post(ctx context.Context, p demoContact, field string, items string, item map[string]any) error {
	body := metaBody(p.ch, p.name, p.waID, field, items, item)
	resp, err := webhooktest.Post(ctx, d.client, d.url, d.secret, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// chat: the customer writes, an agent answers.
func (d *demo) chat(ctx context.Context, p demoContact, at time.Time) error {
	line := demoLines[d.rnd.IntN(len(demoLines))]
	err := d.post(ctx, p, "messages", "messages", map[string]any{
		"from": p.waID, "id": d.id("wamid."), "timestamp": unix(at), "type": "text",
		"text": map[string]string{"body": line[0]},
	})
	if err != nil {
		return err
	}
	return d.s.inbox.addMessage(ctx, chatMessage{
		ID: d.id("wamid.out."), Channel: p.ch.id, Contact: p.waID,
		Direction: "out", Type: "text", Body: line[1], At: at.Add(40 * time.Second),
	})
}

// request records a permission request the agent sent, as the CRM would.
func (d *demo) request(ctx context.Context, p demoContact, at time.Time) (string, error) {
	id := d.id("wamid.req.")
	if _, err := d.s.tracker.Record(ctx, permission.Event{
		Type: permission.EventRequestSent, Channel: p.ch.id, Contact: p.waID, At: at, ID: id,
	}); err != nil {
		return "", err
	}
	d.s.demoMetaRequest(p.ch.id, p.waID, at) // meta_demo.go
	err := d.s.inbox.addMessage(ctx, chatMessage{
		ID: id, Channel: p.ch.id, Contact: p.waID, Direction: "out", Type: "interactive",
		Body: "[Call permission request] We'd like to call you about your request.", At: at,
	})
	return id, err
}

func (d *demo) reply(ctx context.Context, p demoContact, at time.Time, contextID string, r map[string]any) error {
	item := map[string]any{
		"from": p.waID, "id": d.id("wamid."), "timestamp": unix(at), "type": "interactive",
		"interactive": map[string]any{"type": "call_permission_reply", "call_permission_reply": r},
	}
	if contextID != "" {
		item["context"] = map[string]string{"from": p.ch.display, "id": contextID}
	}
	return d.post(ctx, p, "messages", "messages", item)
}

func (d *demo) accept(ctx context.Context, p demoContact, at time.Time, permanent bool) error {
	req, err := d.request(ctx, p, at.Add(-time.Minute))
	if err != nil {
		return err
	}
	r := map[string]any{"response": "accept", "is_permanent": permanent, "response_source": "user_action"}
	if !permanent {
		r["expiration_timestamp"] = unix(at.Add(permission.DefaultTTL))
	}
	return d.reply(ctx, p, at, req, r)
}

// shortGrant is an accept whose expiration Meta set minutes ahead.
func (d *demo) shortGrant(ctx context.Context, p demoContact, now time.Time) error {
	req, err := d.request(ctx, p, now.Add(-2*time.Minute))
	if err != nil {
		return err
	}
	exp := now.Add(time.Duration(90+d.rnd.IntN(240)) * time.Second)
	return d.reply(ctx, p, now.Add(-time.Minute), req, map[string]any{
		"response": "accept", "is_permanent": false, "response_source": "user_action",
		"expiration_timestamp": exp.Unix(), // a number: Meta sends both forms
	})
}

func (d *demo) reject(ctx context.Context, p demoContact, at time.Time) error {
	req, err := d.request(ctx, p, at.Add(-time.Minute))
	if err != nil {
		return err
	}
	return d.reply(ctx, p, at, req, map[string]any{"response": "reject", "response_source": "user_action"})
}

// missedCall: the user called, nobody picked up; Meta then confirms the
// callback permission with an automatic reply.
func (d *demo) missedCall(ctx context.Context, p demoContact, at time.Time) error {
	wacid := d.id("wacid.")
	err := d.post(ctx, p, "calls", "calls", map[string]any{
		"id": wacid, "to": p.ch.display, "from": p.waID, "event": "terminate",
		"direction": "USER_INITIATED", "timestamp": unix(at), "status": "FAILED",
	})
	if err != nil {
		return err
	}
	return d.reply(ctx, p, at.Add(time.Second), wacid, map[string]any{
		"response": "accept", "is_permanent": false, "response_source": "automatic",
		"expiration_timestamp": at.Add(time.Second + permission.DefaultTTL).Unix(),
	})
}

func (d *demo) unansweredCalls(ctx context.Context, p demoContact, at time.Time, n int) error {
	for i := range n {
		err := d.post(ctx, p, "calls", "calls", map[string]any{
			"id": d.id("wacid."), "to": p.waID, "from": p.ch.display, "event": "terminate",
			"direction": "BUSINESS_INITIATED", "timestamp": unix(at.Add(time.Duration(i) * 10 * time.Minute)), "status": "FAILED",
		})
		if err != nil {
			return err
		}
	}
	return nil
}
