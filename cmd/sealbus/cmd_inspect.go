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

With --verify, JWTs and cards are verified against this home's operator (the whole chain for a
card); a failure exits with status 4.`,
		Example: `  sealbus inspect ~/.local/share/sealbus/accounts/shop/services/billing.creds
  sealbus inspect --verify eyJ0eXAiOiJKV1Qi...
  nats stream get ORDERS 1 --raw | sealbus inspect -`,
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
				v, human, err = inspectEnvelope(data)
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
		return io.ReadAll(io.LimitReader(a.stdin, maxInspect))
	}
	f, err := os.Open(arg)
	if err == nil {
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, maxInspect))
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
		fmt.Fprintf(w, "  service    %s\n  user key   %s\n  account    %s\n", esc(uc.Name), esc(uc.Subject), out["account"])
		if curve != "" {
			fmt.Fprintf(w, "  curve key  %s\n", curve)
		} else {
			fmt.Fprintf(w, "  curve key  none (a plain NATS creds file; cannot open envelopes)\n")
		}
		fmt.Fprintf(w, "  expires    %s\n", fmtTime(unixTime(uc.Expires)))
		fmt.Fprintf(w, "  pub allow  %s\n  sub allow  %s\n", esc(strings.Join(uc.Permissions.Pub.Allow, " ")), esc(strings.Join(uc.Permissions.Sub.Allow, " ")))
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
			fmt.Fprintf(w, "  %s\n", esc(line))
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
	out := map[string]any{"kind": "card", "card": card}
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

func inspectEnvelope(data []byte) (any, func(io.Writer), error) {
	info, err := envelope.Inspect(data)
	if err != nil {
		return nil, nil, &cliError{code: exitRefused, err: fmt.Errorf("not a JWT, creds file or valid envelope: %w", err)}
	}
	out := map[string]any{
		"kind": "envelope", "version": info.Version, "suite": info.Suite, "id": info.ID.String(),
		"account": info.Account, "subject": info.Subject, "sender": info.Sender, "content_type": info.ContentType,
		"created": info.Created, "recipients": info.Recipients, "epoch_key": info.EpochKey,
		"payload_len": info.PayloadLen, "leaf_index": info.LeafIndex, "tree_size": info.TreeSize, "size": info.Size,
	}
	if !info.Expires.IsZero() {
		out["expires"] = info.Expires
	}
	return out, func(w io.Writer) {
		fmt.Fprintf(w, "sealed envelope v%d suite %d (not decrypted, signature not checked)\n", info.Version, info.Suite)
		fmt.Fprintf(w, "  id          %s\n  account     %s\n  subject     %s\n  sender      %s\n", info.ID, info.Account, info.Subject, info.Sender)
		fmt.Fprintf(w, "  created     %s\n  content     %s, %d bytes\n", fmtTime(info.Created), info.ContentType, info.PayloadLen)
		fmt.Fprintf(w, "  batch       leaf %d of %d\n  size        %d bytes\n", info.LeafIndex, info.TreeSize, info.Size)
		for _, r := range info.Recipients {
			fmt.Fprintf(w, "  recipient   %s\n", r)
		}
	}, nil
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
