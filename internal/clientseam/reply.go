package clientseam

import "strconv"

// ReplySubject returns prefix followed by id in base 36, the reply subject of a request
// answered on a prefix+"*" subscription, in one allocation (prefix + strconv.FormatUint
// makes two for most ids).
func ReplySubject(prefix string, id uint64) string {
	var buf [96]byte
	b := append(buf[:0], prefix...)
	return string(strconv.AppendUint(b, id, 36))
}
