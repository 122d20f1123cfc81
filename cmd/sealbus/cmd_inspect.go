package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
	"github.com/spf13/cobra"

	"github.com/sealbus/sealbus/accounts"
	"github.com/sealbus/sealbus/envelope"
	"github.com/sealbus/sealbus/operator"
)

// maxInspect bounds what inspect reads.
const maxInspect = 8 << 20

func (a *app) inspectCmd() *cobra.Command {
	var verify bool
	cmd := &cobra.Command{
		Use:   "inspect FILE|TOKEN|-",
		Short: "Decode a JWT, an identity card, a creds file's public part or an envelope",
		Long: `inspect recognizes what it is given (a file, "-" for standard input, or a token on the
command line) and prints its public content: operator, account and user JWTs; identity cards;
creds files (the user JWT and the public keys only; seeds are never printed); sealed envelopes
(header fields, without decrypting).

Keys are named after this home's accounts and services when it knows them (no passphrase
needed). Input may be raw bytes or base64 (as ` + "`nats stream get --json`" + ` prints message data); a
trailing newline after an envelope is ignored.

With --verify, JWTs and cards are verified against this home's operator (the whole chain for a
card), and an envelope is verified as its recipient would (sender's card up to the operator,
permission to publish on the subject, signature, key commitment and decryption) with the keys of
a recipient service of this home (the passphrase is needed); the payload is not printed. A
failure exits with status 4.`,
		Example: `  sealbus inspect ~/.local/share/sealbus/accounts/shop/services/billing.creds
  sealbus inspect --verify eyJ0eXAiOiJKV1Qi...
  nats --context shop-admin stream get ORDERS 1 --json | jq -r .data | sealbus inspect --verify -`,
		Args: exact(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := a.readInput(args[0])
			if err != nil {
				return err
			}
			var v any
			var human func(io.Writer)
			switch {
			case bytes.Contains(data, []byte("BEGIN NATS USER JWT")):
				v, human, err = inspectCreds(data)
			case looksLikeJWT(data):
				v, human, err = a.inspectToken(strings.TrimSpace(string(data)), verify)
			default:
				v, human, err = a.inspectEnvelope(data, verify)
			}
			if err != nil {
				return err
			}
			return a.print(v, human)
		},
	}
	cmd.Flags().BoolVar(&verify, "verify", false, "verify JWTs and cards against this home's operator")
	return cmd
}

func (a *app) readInput(arg string) ([]byte, error) {
	if arg == "-" {
		b, err := io.ReadAll(io.LimitReader(a.stdin, maxInspect))
		if err != nil {
			return nil, err
		}
		return fromBase64(b), nil
	}
	f, err := os.Open(arg)
	if err == nil {
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxInspect))
		if err != nil {
			return nil, err
		}
		return fromBase64(b), nil
	}
	if looksLikeJWT([]byte(arg)) {
		return []byte(arg), nil
	}
	return nil, err
}

func looksLikeJWT(b []byte) bool {
	s := strings.TrimSpace(string(b))
	if len(s) < 20 || strings.ContainsAny(s, " \n\r\t") {
		return false
	}
	parts := strings.Split(s, ".")
	return len(parts) == 3 && strings.HasPrefix(s, "eyJ")
}

func inspectCreds(data []byte) (any, func(io.Writer), error) {
	c, err := accounts.ParseCreds(data)
	if err != nil {
		return nil, nil, err
	}
	defer wipe(c.UserSeed)
	defer wipe(c.CurveSeed)
	uc, err := jwt.DecodeUserClaims(c.UserJWT)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", accounts.ErrBadToken, err)
	}
	out := map[string]any{
		"kind": "creds", "name": uc.Name, "user_key": uc.Subject, "account": firstNonEmpty(uc.IssuerAccount, uc.Issuer),
		"issuer": uc.Issuer, "expires": unixTime(uc.Expires), "permissions": uc.Permissions,
		"has_curve_key": c.CurveSeed != nil,
	}
	curve := ""
	if c.CurveSeed != nil {
		if kp, err := nkeys.FromCurveSeed(c.CurveSeed); err == nil {
			curve, _ = kp.PublicKey()
			out["curve_key"] = curve
		}
	}
	return out, func(w io.Writer) {
		fmt.Fprintf(w, "creds file (seeds not shown)\n")
		fmt.Fprintf(w, "  service    %s\n  user key   %s\n  account    %s\n", operator.Escape(uc.Name), operator.Escape(uc.Subject), out["account"])
		if curve != "" {
			fmt.Fprintf(w, "  curve key  %s\n", curve)
		} else {
			fmt.Fprintf(w, "  curve key  none (a plain NATS creds file; cannot open envelopes)\n")
		}
		fmt.Fprintf(w, "  expires    %s\n", fmtTime(unixTime(uc.Expires)))
		fmt.Fprintf(w, "  pub allow  %s\n  sub allow  %s\n", operator.Escape(strings.Join(uc.Permissions.Pub.Allow, " ")), operator.Escape(strings.Join(uc.Permissions.Sub.Allow, " ")))
	}, nil
}

func (a *app) inspectToken(tok string, verify bool) (any, func(io.Writer), error) {
	if tokenType(tok) == accounts.CardType {
		card, err := accounts.DecodeCard(tok)
		if err != nil {
			return nil, nil, err
		}
		return a.inspectCard(tok, card, verify)
	}
	claims, err := jwt.Decode(tok)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", accounts.ErrBadToken, err)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(claims.String()), &raw); err != nil {
		return nil, nil, err
	}
	out := map[string]any{"kind": string(claims.ClaimType()), "claims": raw}
	status := ""
	if verify {
		op, err := a.operatorKey()
		if err != nil {
			return nil, nil, err
		}
		switch c := claims.(type) {
		case *jwt.AccountClaims:
			if _, err := (accounts.Trust{Operators: []string{op}}).VerifyAccount(tok); err != nil {
				return nil, nil, err
			}
		case *jwt.OperatorClaims:
			if c.Subject != op {
				return nil, nil, fmt.Errorf("%w: operator %s is not this home's operator", accounts.ErrUntrustedOperator, c.Subject)
			}
		default:
			return nil, nil, usageErr("--verify handles account and operator JWTs and cards, not %s", claims.ClaimType())
		}
		status = "verified against operator " + op
		out["verified"] = true
	}
	return out, func(w io.Writer) {
		fmt.Fprintf(w, "%s JWT\n", claims.ClaimType())
		b, _ := json.MarshalIndent(raw, "", "  ")
		for _, line := range strings.Split(string(b), "\n") { // the token's claims: untrusted text
			fmt.Fprintf(w, "  %s\n", operator.Escape(line))
		}
		if status != "" {
			fmt.Fprintln(w, status)
		}
	}, nil
}

// tokenType reads the claim type ("nats.type") of a JWT without verifying it.
func tokenType(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Nats struct {
			Type string `json:"type"`
		} `json:"nats"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Nats.Type
}

func (a *app) inspectCard(tok string, card *accounts.Card, verify bool) (any, func(io.Writer), error) {
	out := map[string]any{"kind": "card", "card": cardView(card)}
	status := ""
	if verify {
		s, err := a.open(false)
		if err != nil {
			return nil, nil, err
		}
		defer s.Close()
		acct, err := findAccount(s, card.Account)
		if err != nil {
			return nil, nil, err
		}
		trust := accounts.Trust{Operators: []string{s.op.PublicKey()}}
		ac, err := trust.VerifyAccount(acct.JWT)
		if err != nil {
			return nil, nil, err
		}
		if _, err := trust.VerifyCard(tok, ac); err != nil {
			return nil, nil, err
		}
		status = "verified: card → signing key → account " + acct.Name + " → operator " + s.op.PublicKey()
		out["verified"] = true
	}
	return out, func(w io.Writer) {
		fmt.Fprintf(w, "identity card\n")
		fmt.Fprintf(w, "  service    %s\n  account    %s\n  issuer     %s\n", card.Name, card.Account, card.Issuer)
		fmt.Fprintf(w, "  user key   %s\n  curve key  %s\n", card.UserKey, card.CurveKey)
		for _, p := range card.PreviousCurveKeys {
			fmt.Fprintf(w, "  previous   %s until %s\n", p.CurveKey, fmtTime(p.Until))
		}
		fmt.Fprintf(w, "  publish    %s\n  subscribe  %s\n", strings.Join(card.Publish, " "), strings.Join(card.Subscribe, " "))
		fmt.Fprintf(w, "  valid      %s .. %s\n", fmtTime(card.NotBefore), fmtTime(card.Expires))
		if status != "" {
			fmt.Fprintln(w, status)
		}
	}, nil
}

func findAccount(s *session, pub string) (*accounts.Account, error) {
	names, err := s.ks.ListAccounts()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		acct, err := s.ks.LoadAccount(n)
		if err != nil {
			return nil, err
		}
		if acct.PublicKey() == pub {
			return acct, nil
		}
	}
	return nil, fmt.Errorf("%w: account %s is not in this keystore", accounts.ErrNotFound, pub)
}

// operatorKey reads the operator's public key without needing the passphrase.
func (a *app) operatorKey() (string, error) {
	s, err := a.open(false)
	if err != nil {
		return "", err
	}
	defer s.Close()
	return s.op.PublicKey(), nil
}

// fromBase64 decodes b when it is nothing but standard base64 (with an optional trailing
// newline), else returns b.
func fromBase64(b []byte) []byte {
	t := bytes.TrimRight(b, "\r\n")
	if len(t) < 16 || bytes.ContainsAny(t, " \t\r\n") {
		return b
	}
	if d, err := base64.StdEncoding.DecodeString(string(t)); err == nil {
		return d
	}
	return b
}

// keyNames names the keys of this home's accounts and services, from the read-only keystore.
type keyNames map[string]string

func (a *app) keyNames() keyNames {
	out := keyNames{}
	ks := a.completionStore()
	if ks == nil {
		return out
	}
	defer ks.Close()
	names, _ := ks.ListAccounts()
	for _, n := range names {
		acct, err := ks.LoadAccount(n)
		if err != nil {
			continue
		}
		out[acct.PublicKey()] = "account " + n
		svcs, _ := ks.ListServices(n)
		for _, sn := range svcs {
			svc, err := ks.LoadService(n, sn)
			if err != nil {
				continue
			}
			out[svc.UserPublicKey()] = n + "/" + sn
			out[svc.CurvePublicKey()] = n + "/" + sn
			for _, p := range svc.PreviousCurveKeys {
				if pk, err := p.Key.PublicKey(); err == nil {
					out[pk] = n + "/" + sn + " (previous key)"
				}
			}
		}
	}
	return out
}

// label is "KEY (name)" for a known key, "KEY" otherwise.
func (k keyNames) label(key string) string {
	if n, ok := k[key]; ok {
		return key + " (" + n + ")"
	}
	return key
}

func (a *app) inspectEnvelope(data []byte, verify bool) (any, func(io.Writer), error) {
	info, err := envelope.Inspect(data)
	trimmed := false
	if err != nil && len(data) > 0 && data[len(data)-1] == '\n' {
		// A tool (the nats CLI) printed the bytes with a newline after them.
		if i2, err2 := envelope.Inspect(bytes.TrimSuffix(data, []byte("\n"))); err2 == nil {
			info, err, trimmed = i2, nil, true
			data = bytes.TrimSuffix(data, []byte("\n"))
		}
	}
	if err != nil {
		return nil, nil, &cliError{code: exitRefused, err: fmt.Errorf("not a JWT, creds file or valid envelope: %w", err)}
	}
	names := a.keyNames()
	out := map[string]any{
		"kind": "envelope", "version": info.Version, "suite": info.Suite, "id": info.ID.String(),
		"account": info.Account, "subject": info.Subject, "sender": info.Sender, "content_type": info.ContentType,
		"created": info.Created, "recipients": info.Recipients, "epoch_key": info.EpochKey,
		"payload_len": info.PayloadLen, "leaf_index": info.LeafIndex, "tree_size": info.TreeSize, "size": info.Size,
		"names": map[string]string{},
	}
	for _, k := range append([]string{info.Account, info.Sender}, info.Recipients...) {
		if n, ok := names[k]; ok {
			out["names"].(map[string]string)[k] = n
		}
	}
	if !info.Expires.IsZero() {
		out["expires"] = info.Expires
	}
	status := "not decrypted, signature not checked"
	if verify {
		who, err := a.verifyEnvelope(data, info)
		if err != nil {
			return nil, nil, err
		}
		status = "verified by " + who + ": sender's card, permission, signature and decryption (payload not shown; freshness not checked)"
		out["verified"] = true
		out["verified_as"] = who
	}
	return out, func(w io.Writer) {
		fmt.Fprintf(w, "sealed envelope v%d suite %d (%s)\n", info.Version, info.Suite, status)
		if trimmed {
			fmt.Fprintln(w, "  (a trailing newline after the envelope was ignored)")
		}
		fmt.Fprintf(w, "  id          %s\n  account     %s\n  subject     %s\n  sender      %s\n", info.ID, names.label(info.Account), operator.Escape(info.Subject), names.label(info.Sender))
		fmt.Fprintf(w, "  created     %s\n  content     %s, %d bytes\n", fmtTime(info.Created), operator.Escape(info.ContentType), info.PayloadLen)
		fmt.Fprintf(w, "  batch       leaf %d of %d\n  size        %d bytes\n", info.LeafIndex, info.TreeSize, info.Size)
		for _, r := range info.Recipients {
			fmt.Fprintf(w, "  recipient   %s\n", names.label(r))
		}
	}, nil
}

// verifyEnvelope opens the envelope with the keys of a recipient service of this home, with a
// sender policy that verifies the sender's card up to this home's operator. It returns the
// recipient service's name.
func (a *app) verifyEnvelope(data []byte, info *envelope.Info) (string, error) {
	s, err := a.open(false)
	if err != nil {
		return "", err
	}
	defer s.Close()
	trust := accounts.Trust{Operators: []string{s.op.PublicKey()}}
	var acctName string
	var acctClaims *jwt.AccountClaims
	var sender *accounts.Card
	var recipient *accounts.Service
	names, err := s.ks.ListAccounts()
	if err != nil {
		return "", err
	}
	for _, n := range names {
		acct, err := s.ks.LoadAccount(n)
		if err != nil || acct.PublicKey() != info.Account {
			continue
		}
		ac, err := trust.VerifyAccount(acct.JWT)
		if err != nil {
			return "", err
		}
		acctName, acctClaims = n, ac
		svcs, err := s.ks.ListServices(n)
		if err != nil {
			return "", err
		}
		for _, sn := range svcs {
			svc, err := s.ks.LoadService(n, sn)
			if err != nil {
				continue
			}
			if svc.UserPublicKey() == info.Sender {
				if sender, err = trust.VerifyCard(svc.Card, ac); err != nil {
					return "", err
				}
			}
			for _, r := range info.Recipients {
				if recipient == nil && r == svc.CurvePublicKey() {
					recipient = svc
				}
			}
		}
	}
	switch {
	case acctClaims == nil:
		return "", &cliError{code: exitRefused, err: fmt.Errorf("%w: the envelope's account %s is not in this keystore", accounts.ErrUnknownSigner, info.Account)}
	case sender == nil:
		return "", &cliError{code: exitRefused, err: fmt.Errorf("%w: sender %s is not a current service of account %s in this keystore", accounts.ErrUnknownSigner, info.Sender, acctName)}
	case recipient == nil:
		return "", &cliError{code: exitNotFound, err: fmt.Errorf("%w: no recipient of the envelope is a service of this keystore (nothing here can open it)", accounts.ErrNotFound)}
	}
	useed, err := recipient.UserKey.Seed()
	if err != nil {
		return "", err
	}
	defer wipe(useed)
	cseed, err := recipient.CurveKey.Seed()
	if err != nil {
		return "", err
	}
	defer wipe(cseed)
	id, err := envelope.NewIdentity(useed, cseed)
	if err != nil {
		return "", err
	}
	defer id.Wipe()
	policy := envelope.SenderPolicyFunc(func(account, key, subject string, created time.Time) error {
		if key != sender.UserKey {
			return envelope.ErrSenderUnknown
		}
		if accounts.IsRevoked(acctClaims, key, sender.IssuedAt) {
			return envelope.ErrSenderRevoked
		}
		if !sender.MayPublish(subject) {
			return envelope.ErrSenderForbidden
		}
		return nil
	})
	op, err := envelope.NewOpener([]*envelope.Identity{id}, policy)
	if err != nil {
		return "", err
	}
	opened, err := op.Open(data, envelope.Delivery{Account: info.Account, Subject: info.Subject, Stored: info.Created})
	if err != nil {
		return "", &cliError{code: exitRefused, err: fmt.Errorf("envelope does not verify: %w", err)}
	}
	wipe(opened.Payload)
	return acctName + "/" + recipient.Spec.Name, nil
}

func unixTime(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// inspectEnvelope decodes an envelope without this home's names and without verifying it
// (for callers with no app at hand).
func inspectEnvelope(data []byte) (any, func(io.Writer), error) {
	return (&app{}).inspectEnvelope(data, false)
}

// cardJSON is the --json shape of an identity card.
type cardJSON struct {
	ID                string         `json:"id"`
	Name              string         `json:"name"`
	Account           string         `json:"account"`
	Issuer            string         `json:"issuer"`
	UserKey           string         `json:"user_key"`
	CurveKey          string         `json:"curve_key"`
	PreviousCurveKeys []previousJSON `json:"previous_curve_keys,omitempty"`
	Publish           []string       `json:"publish"`
	Subscribe         []string       `json:"subscribe"`
	IssuedAt          time.Time      `json:"issued_at"`
	NotBefore         time.Time      `json:"not_before"`
	Expires           time.Time      `json:"expires"`
}

func cardView(c *accounts.Card) cardJSON {
	v := cardJSON{ID: c.ID, Name: c.Name, Account: c.Account, Issuer: c.Issuer, UserKey: c.UserKey, CurveKey: c.CurveKey,
		Publish: nonNil(c.Publish), Subscribe: nonNil(c.Subscribe), IssuedAt: c.IssuedAt, NotBefore: c.NotBefore, Expires: c.Expires}
	for _, p := range c.PreviousCurveKeys {
		v.PreviousCurveKeys = append(v.PreviousCurveKeys, previousJSON{CurveKey: p.CurveKey, Until: p.Until})
	}
	return v
}
