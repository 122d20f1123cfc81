package consumers

// Headers of a dead letter. The envelope itself is the message body, byte for byte as it was
// received; these headers say why and where from. They never carry payloads or secrets.
const (
	HeaderReason         = "Sealbus-Reason"          // reason code, e.g. "bad_signature", "max_deliveries"
	HeaderSourceStream   = "Sealbus-Source-Stream"   // stream the envelope was consumed from
	HeaderSourceSequence = "Sealbus-Source-Sequence" // its sequence in that stream (decimal)
	HeaderSourceSubject  = "Sealbus-Source-Subject"  // subject it was delivered on
	HeaderConsumer       = "Sealbus-Consumer"        // durable consumer that refused it
	HeaderTime           = "Sealbus-Time"            // when it was dead-lettered (RFC 3339, UTC, nanoseconds)
	HeaderError          = "Sealbus-Error"           // the refusal's error text (bounded, no secrets)
	HeaderMessageID      = "Sealbus-Message-Id"      // envelope message id, when the envelope parsed
	HeaderDelivered      = "Sealbus-Delivered"       // delivery count when it was dead-lettered
)

// maxHeaderError bounds the error text in a dead letter.
const maxHeaderError = 512
