// Package accounts holds sealbus identities and trust: operator, account and
// service keys (nkeys), their JWTs (jwt/v2), identity cards, revocation,
// limits, the on-disk keystore, .creds files and the configuration of a
// stock nats-server in operator mode.
//
// It imports nkeys, jwt/v2, x/crypto and the standard library only; it never
// opens a network connection. Pushing JWTs to servers and cards to the
// directory belongs to package bus.
//
// # Trust chain
//
// An [Operator] signs account JWTs. An [Account] is a tenant; its identity
// key may stay offline because SigningKeys[0] signs service user JWTs and
// identity cards. A [Service] is a NATS user holding an Ed25519 user key
// ("U...": signs envelopes, authenticates to NATS) and an X25519 curve key
// ("X...": receives content keys). Its [Card] binds both keys, its name and
// its permissions to the account for a validity period.
//
// [Trust] verifies the chain: card → account signing key → account JWT →
// trusted operator key, with a clock-skew allowance ([DefaultSkew], 2
// minutes), the account's revocations (including "*"), and, with
// [Trust.VerifyService], the card's consistency with the service's user
// JWT. Cards must be issued by the account identity key or an unscoped
// signing key: NATS lets a scoped signing key issue only users with its
// template's permissions, while a card states its own, so a card from a
// scoped key is refused ([ErrScopedSigner]). Verification collects every problem into a [*ValidationError] instead
// of stopping at the first; [errors.Is] matches any of them.
//
// # Permissions
//
// A service declares what it does in a [ServiceSpec]; [ServicePermissions]
// computes its least-privilege NATS permissions (docs/PERMISSIONS.md lists
// them). Declared subjects must start with a literal token that is not
// reserved: not '*' or '>' (they would also match server API subjects), not
// "$..." or "_..." (server APIs and inboxes) and not "sealbus" (sealbus's own
// streams, [DLQSubjectPrefix] and [AuditSubjectPrefix]). A service writes its evidence only
// on its own literal subjects ([AuditSubject], [DLQSubject]), named by a secret token drawn
// when it is created ([NewEvidenceToken]) and carried by its user JWT alone. The same rule holds
// for a card's subjects, checked when it is issued and when it is decoded.
// The card carries the declared Publish and Subscribe lists; the user JWT
// carries exactly [ServicePermissions] of them, which [Trust.VerifyService]
// checks entry by entry (allow and deny lists, no response permission), so
// one declaration drives the server's enforcement and the encryption
// audience.
//
// # Keystore
//
// [Keystore] keeps keys under [HomeDir]: $SEALBUS_HOME, else
// $XDG_DATA_HOME/sealbus, else ~/.local/share/sealbus. Directories are 0700
// and files 0600:
//
//	keystore.json                           format, version, encrypted or not, passphrase check
//	operator/<name>.json                    operator JWT and seed, system account, system user
//	accounts/<name>/account.json            account JWT, identity and signing seeds
//	accounts/<name>/services/<svc>.json     spec, user JWT, card, user, curve and previous curve seeds
//	accounts/<name>/services/<svc>.creds    written by [Keystore.WriteCreds]
//
// Other sealbus components (the CLI) may add their own files under the same
// home. Public parts (JWTs, cards, specs) are stored in the clear; the seeds
// of a file are one JSON object sealed with XChaCha20-Poly1305 under a key
// derived by scrypt (N=2^15, r=8, p=1 by default) from the passphrase and a
// random salt fresh for every write. The associated data binds the sealed
// secrets to their entry and to a SHA-256 of the entry's public record, so
// editing a spec, JWT, card or previous key of an encrypted store without
// the passphrase makes the entry fail to open. In both modes a service is
// loaded only if its stored spec, computed into [ServicePermissions], equals
// its signed user JWT's permissions and its card's subjects ([ErrCorrupt]
// otherwise), so a widened spec is never signed by a later rotation.
// scrypt parameters read from a file are bounded before any derivation (at
// most 256 MiB, p at most 4). A store created encrypted cannot be opened
// without its passphrase and vice versa; a wrong passphrase is reported as
// [ErrWrongPassphrase] before anything is written. A home holding entries
// but no keystore.json is refused ([ErrCorrupt]) instead of receiving a new
// marker. The file format is version 2; version 1 files are refused.
// [WithUnencrypted] is for local development: the files say "encrypted":
// false. Writes are atomic (temporary file, fsync, rename, directory fsync).
// Seeds are held in memory as byte slices and zeroed once an entry is
// loaded or saved; [Keystore.Close] zeroes the passphrase and derived keys.
//
// # Names, subjects and flows
//
// names.go names every stream, bucket, directory key and subject of sealbus; subject.go is the
// one subject validator ([ValidSubject], [ValidPattern], [CheckAppSubject], [SubjectMatches],
// [SubjectSubset]); flows.go holds every rule of cross-account flows ([ImportedAs],
// [ImportOrigin], [ExportsStream], [ImportsStream], [Account.Activation]). A service's
// credentials file is [Creds] ([FormatCreds], [ParseCreds], [ReadCredsFile]).
package accounts
