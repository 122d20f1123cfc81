package consumers

// HeaderReplayAuthorization is the NATS header an operator's replay of a dead letter carries:
// the replay authorization, a record signed by an account signing key (envelope/RECORD.md
// §4.3), in standard base64. Like every NATS header it is not authenticated by itself; Verify
// trusts it only after verifying the record and its binding to this envelope and delivery (see
// Verify). A dead letter's own metadata is not in headers: it is in the signed record.
const HeaderReplayAuthorization = "Sealbus-Replay-Authorization"
