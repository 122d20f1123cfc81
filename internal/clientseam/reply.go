package clientseam

import "strconv"

// ReplySubject returns prefix followed by id in base 36, the reply subject of a request
// answered on a prefix+"*" subscription, in one allocation (prefix + strconv.FormatUint
// makes two for most ids).
func ReplySubject(prefix string, id uint64) string {
	var buf [128]byte // a connection's inbox prefix is 87 bytes (_INBOX_, user key, nuid), an id at most 13
	b := append(buf[:0], prefix...)
	return string(strconv.AppendUint(b, id, 36))
}
