package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/bus"
	"github.com/sealbus/sealbus/consumers"
	"github.com/sealbus/sealbus/envelope"
)

// TestEvidenceOutputIsEscapedAndVerified plays finding 5 (escape sequences in untrusted fields
// moved the cursor and rewrote lines in `audit tail` and `dlq list`) and finding 2's display
// (forged entries printed like genuine ones): a service with raw NATS access writes, on its own
// subjects, an unsigned event and a signed record and dead letter whose texts hold terminal
// escape sequences. Human output holds no control character and marks what does not verify;
// --json keeps every string exact and carries the verification state.
func TestEvidenceOutputIsEscapedAndVerified(t *testing.T) {
	cleanEnv(t)
	home := t.TempDir()
	ok(t, home, "init", "--unencrypted")
	ok(t, home, "account", "add", "shop")
	di := startDev(t, home)
	t.Setenv("SEALBUS_URL", di.URL)
	t.Setenv("SEALBUS_CA", di.CAFile)
	ok(t, home, "stream", "add", "shop", "ORDERS", "--subjects", "orders.>")
	ok(t, home, "service", "add", "shop", "billing", "--sub", "orders.>", "--consumer", "ORDERS:billing", "--push")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := (&app{home: home, ctx: ctx}).open(true)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := s.prov.Keystore.LoadService("shop", "billing")
	if err != nil {
		t.Fatal(err)
	}
	acct, err := s.prov.Keystore.LoadAccount("shop")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	credsPath := (&app{home: home}).credsPathFor(t, "shop", "billing")
	nc, err := connectCreds(t, di, credsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	c, _ := accounts.ReadCredsFile(credsPath)
	uc, _ := jwt.DecodeUserClaims(c.UserJWT)
	tok, _ := accounts.EvidenceTokenOf(uc.Pub.Allow, "billing")
	id, err := envelope.NewIdentity(c.UserSeed, c.CurveSeed)
	if err != nil {
		t.Fatal(err)
	}
	defer id.Wipe()

	const evil = "\x1b[2J\x1b[1;1H\x1b]0;pwned\x07\r\u202eforged"
	publish := func(subject string, data []byte) {
		t.Helper()
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}); err != nil {
			t.Fatal(err)
		}
	}
	// 1. Unsigned JSON naming another source.
	forged := bus.Event{Type: bus.EventRejected, Subject: "orders." + evil, Data: bus.EventData{Reason: evil, Error: evil}}
	if err := forged.Fill(bus.EventSource(acct.PublicKey(), "checkout"), time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(forged)
	publish(accounts.AuditSubject("billing", tok), raw)
	// 2. A genuine record by billing whose texts hold escapes (a service may write any text).
	genuine := forged
	genuine.Source = bus.EventSource(acct.PublicKey(), "billing")
	genuine.ID = "genuine-with-escapes"
	payload, _ := json.Marshal(genuine)
	rec, err := id.SignRecord(envelope.Record{Kind: envelope.RecordAudit, Account: acct.PublicKey(), WriterName: "billing", Credential: svc.Card, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	publish(accounts.AuditSubject("billing", tok), rec)
	// 3. A genuine dead letter with escapes in its subject, reason text and error.
	env := []byte("\x01\x01" + evil)
	sum := sha256.Sum256(env)
	meta, _ := json.Marshal(consumers.DeadLetterMeta{Reason: "poison", Stream: "ORDERS", Sequence: 1, Subject: "orders." + evil, Consumer: "billing",
		Error: evil, Stored: time.Now().UTC(), EnvelopeSize: len(env), EnvelopeSHA256: hex.EncodeToString(sum[:])})
	dl, err := id.SignRecord(envelope.Record{Kind: envelope.RecordDeadLetter, Account: acct.PublicKey(), WriterName: "billing", Credential: svc.Card, Payload: meta, Attachment: env})
	if err != nil {
		t.Fatal(err)
	}
	publish(accounts.DLQSubject("billing", tok), dl)
	// 4. An unsigned dead letter.
	publish(accounts.DLQSubject("billing", tok), []byte(evil))

	noControl := func(what, out string) {
		t.Helper()
		for _, r := range out {
			if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e' {
				t.Fatalf("%s prints control character %U:\n%s", what, r, out)
			}
		}
		if !strings.Contains(out, `\x1b[2J\x1b[1;1H\x1b]0;pwned\x07\x0d\u202eforged`) {
			t.Fatalf("%s does not show the escaped text:\n%s", what, out)
		}
	}
	out := ok(t, home, "audit", "tail", "shop", "--last", "0")
	t.Logf("audit tail:\n%s", out)
	noControl("audit tail", out)
	if !strings.Contains(out, "UNVERIFIED (unsigned") || !strings.Contains(out, "verified  billing") || !strings.Contains(out, "1 UNVERIFIED (unsigned 1)") {
		t.Fatalf("audit tail does not mark the forgery or count it:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "checkout") && !strings.Contains(line, "UNVERIFIED") {
			t.Fatalf("the forged source is printed as genuine: %q", line)
		}
	}
	out = ok(t, home, "dlq", "list", "shop")
	t.Logf("dlq list:\n%s", out)
	noControl("dlq list", out)
	if !strings.Contains(out, "UNVERIFIED (unsigned") || !strings.Contains(out, "2 dead letters: 1 verified, 1 UNVERIFIED") {
		t.Fatalf("dlq list:\n%s", out)
	}
	var dls []deadLetterJSON
	okJSON(t, home, &dls, "dlq", "list", "shop")
	var verifiedSeq uint64
	for _, d := range dls {
		if d.Verification.State == "verified" {
			verifiedSeq = d.Sequence
			if d.SourceSubject != "orders."+evil || d.Error != evil {
				t.Fatalf("--json changed the strings: %q %q", d.SourceSubject, d.Error)
			}
		}
	}
	out = ok(t, home, "dlq", "show", "shop", strconv.FormatUint(verifiedSeq, 10))
	noControl("dlq show", out)

	// --json: exact strings, and the verification state of each record.
	out = ok(t, home, "audit", "tail", "shop", "--last", "0", "--json")
	states := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var v struct {
			ID           string `json:"id"`
			Subject      string `json:"subject"`
			Verification struct {
				State string `json:"state"`
			} `json:"verification"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("--json line %q: %v", sc.Text(), err)
		}
		if v.Subject == "orders."+evil {
			states[v.ID] = v.Verification.State
		}
	}
	if states[forged.ID] != "unsigned" || states["genuine-with-escapes"] != "verified" {
		t.Fatalf("--json states %v", states)
	}

	// The operator-wide view holds the same four records of billing, attributed to shop (the
	// view stream they are in), with the same verification, escaped; the filters select them;
	// --json keeps every string exact.
	var all string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		all = ok(t, home, "audit", "tail", "--all", "--account", "shop", "--service", "billing", "--last", "0")
		if strings.Contains(all, "4 records") || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("audit tail --all:\n%s", all)
	noControl("audit tail --all", all)
	if !strings.Contains(all, "4 records: 2 verified, 2 UNVERIFIED (unsigned 2)") || !strings.Contains(all, "stored by billing") ||
		!strings.Contains(all, "verified  billing") || !strings.Contains(all, "dead letter poison") {
		t.Fatalf("audit tail --all:\n%s", all)
	}
	for _, line := range strings.Split(strings.TrimSpace(all), "\n")[:4] {
		if f := strings.Fields(line); len(f) < 2 || f[1] != "shop" {
			t.Fatalf("a record of the view not attributed to shop: %q", line)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--type", "dlq"}, "2 records: 1 verified, 1 UNVERIFIED (unsigned 1)"},
		{[]string{"--reason", "poison"}, "1 records: 1 verified"},
		{[]string{"--type", bus.EventRejected, "--since", "1h"}, "2 records: 1 verified, 1 UNVERIFIED (unsigned 1)"},
		{[]string{"--account", "nobody"}, "no audit events"},
	} {
		args := append([]string{"audit", "tail", "--all", "--service", "billing", "--last", "0"}, tc.args...)
		if out := ok(t, home, args...); !strings.Contains(out, tc.want) {
			t.Errorf("%v: want %q in\n%s", tc.args, tc.want, out)
		}
	}
	out = ok(t, home, "audit", "tail", "--all", "--service", "billing", "--last", "0", "--json")
	var seen int
	sc = bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var v struct {
			ID          string          `json:"id"`
			Subject     string          `json:"subject"`
			AccountName string          `json:"account_name"`
			Account     string          `json:"account"`
			Kind        string          `json:"kind"`
			StoredBy    string          `json:"stored_by"`
			DeadLetter  *deadLetterJSON `json:"dead_letter"`
			Raw         []byte          `json:"raw"`
			Verify      struct {
				State string `json:"state"`
			} `json:"verification"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("--all --json line %q: %v", sc.Text(), err)
		}
		if v.AccountName != "shop" || v.Account != acct.PublicKey() || v.StoredBy != "billing" {
			t.Fatalf("--all --json record %s", sc.Text())
		}
		seen++
		switch {
		case v.Kind == "audit" && v.ID == forged.ID:
			if v.Verify.State != "unsigned" || v.Subject != "orders."+evil {
				t.Fatalf("forged event in --all --json: %s", sc.Text())
			}
		case v.Kind == "audit":
			if v.ID != "genuine-with-escapes" || v.Verify.State != "verified" || v.Subject != "orders."+evil {
				t.Fatalf("genuine event in --all --json: %s", sc.Text())
			}
		case v.DeadLetter != nil && v.Verify.State == "verified":
			if v.DeadLetter.SourceSubject != "orders."+evil || v.DeadLetter.Error != evil {
				t.Fatalf("--all --json changed the strings: %s", sc.Text())
			}
		case v.DeadLetter != nil:
			if v.Verify.State != "unsigned" || string(v.Raw) != evil {
				t.Fatalf("unsigned dead letter in --all --json: %s", sc.Text())
			}
		default:
			t.Fatalf("unexpected record %s", sc.Text())
		}
	}
	if seen != 4 {
		t.Fatalf("--all --json: %d records of billing, want 4:\n%s", seen, out)
	}
	// --follow prints what is stored after the tail, as it comes, until interrupted.
	fctx, stopFollow := context.WithTimeout(ctx, 30*time.Second)
	defer stopFollow()
	var fout, ferr syncBuffer
	followed := make(chan int, 1)
	go func() {
		followed <- runContext(fctx, []string{"--home", home, "audit", "tail", "--all", "--follow", "--json", "--service", "billing", "--last", "1"}, &fout, &ferr)
	}()
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(fout.String(), `"stored_by":"billing"`); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("audit tail --all --follow printed no tail:\n%s\n%s", fout.String(), ferr.String())
		}
	}
	publish(accounts.AuditSubject("billing", tok), []byte("followed "+evil))
	var last viewJSON
	for deadline := time.Now().Add(15 * time.Second); string(last.Raw) != "followed "+evil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("audit tail --all --follow did not print the new record:\n%s\n%s", fout.String(), ferr.String())
		}
		lines := strings.Split(strings.TrimSpace(fout.String()), "\n")
		last = viewJSON{}
		_ = json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	}
	stopFollow()
	if code := <-followed; code != 0 {
		t.Fatalf("audit tail --all --follow exited %d: %s", code, ferr.String())
	}
	if last.Verification.State != "unsigned" || last.AccountName != "shop" || last.StoredBy != "billing" {
		t.Fatalf("followed record %+v", last)
	}

	wantCode(t, sb(t, home, "audit", "tail", "--all", "shop"), exitUsage, "not both")
	wantCode(t, sb(t, home, "audit", "tail", "shop", "--service", "billing"), exitUsage, "--all")
}

// credsPathFor returns a service's creds file in the keystore home.
func (a *app) credsPathFor(t *testing.T, account, service string) string {
	t.Helper()
	s, err := a.open(false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return s.prov.CredsPath(account, service)
}
