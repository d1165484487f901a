package schemas

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The rules below are envelope.schema.json written in Go: a JSON Schema
// validator costs several times the decoding itself on the delivery path. The schema
// stays the published contract; schema_equivalence_test.go runs every test
// envelope through both and fails when they disagree.
//
// On top of the schema, check refuses what the Envelope struct cannot hold (a
// "v" of 1.0, a ts that time.Parse refuses, a userId of 5 in a deliver
// envelope) and a ts of the zero time: Decode has always refused those.

// Messages the schema gives as descriptions of anyOf and not.
const (
	msgAddressSomeone = "must address someone: a non-empty users, rooms or sockets list, or all: true"
	msgReservedEvent  = "must be a non-empty event name other than the reserved Socket.IO names connect, connect_error, disconnect, disconnecting, newListener, removeListener"
)

var (
	kinds          = []string{string(KindDeliver), string(KindClientEvent), string(KindControl)}
	actions        = []string{ActionJoin, ActionLeave, ActionDisconnect, ActionHeartbeat, ActionQuery, ActionReply}
	reservedEvents = []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
	heartbeatStats = []string{"connections", "users", "rooms"}
)

// textRule constrains a string property ($defs nonEmptyString, eventName,
// deliverEvent); lengths count Unicode code points, as JSON Schema does.
type textRule struct {
	min, max int
	reserved []string
}

var (
	envelopeID     = textRule{min: 1, max: 128}
	nonEmptyString = textRule{min: 1, max: 256}
	eventName      = textRule{min: 1, max: 128}
	deliverEvent   = textRule{min: 1, max: 128, reserved: reservedEvents}
)

// propRule says what the schema asks of a string property for the kind at
// hand. Without a rule the schema says nothing, and the property only has to
// fit its Envelope field: a string or null.
type propRule struct {
	rule     *textRule
	required bool
}

// check reports what is wrong with w, in no particular order; nil if nothing.
func (w *wireEnvelope) check() []FieldError {
	var c checker
	c.version(w.V)
	c.text("/id", w.ID, propRule{&envelopeID, true})
	kind := Kind(c.enum("/kind", w.Kind, kinds))
	c.timestamp(w.TS)

	var event, userID, socketID, instance, room propRule
	switch kind {
	case KindDeliver:
		event = propRule{&deliverEvent, true}
	case KindClientEvent:
		event = propRule{&eventName, true}
		userID = propRule{&nonEmptyString, true}
		socketID = propRule{&nonEmptyString, true}
		instance = propRule{rule: &nonEmptyString}
	case KindControl:
		userID = propRule{rule: &nonEmptyString}
		room = propRule{rule: &nonEmptyString}
		instance = propRule{rule: &nonEmptyString}
		switch c.enum("/action", w.Action, actions) {
		case ActionJoin, ActionLeave:
			userID.required, room.required = true, true
		case ActionDisconnect:
			userID.required = true
		case ActionHeartbeat:
			instance.required = true
			c.heartbeatStats(w.Data)
		case ActionQuery, ActionReply:
			instance.required = true
			switch t := typeOf(w.Data); t {
			case absent:
				c.add("/data", "is required")
			case jsonObject:
			default:
				c.wrongType("/data", t, "object")
			}
		}
	}
	if kind != KindControl {
		c.text("/action", w.Action, propRule{})
	}
	deliver := kind == KindDeliver
	if deliver && w.To.typ == absent {
		c.add("/to", "is required")
	}
	c.address("/to", &w.To, deliver)
	if deliver && w.To.typ == jsonObject && !w.To.addressesSomeone() {
		c.add("/to", msgAddressSomeone)
	}
	c.text("/event", w.Event, event)
	c.text("/userId", w.UserID, userID)
	c.text("/socketId", w.SocketID, socketID)
	c.text("/instance", w.Instance, instance)
	c.text("/room", w.Room, room)
	return c.errs
}

// checker collects what is wrong with an envelope, one FieldError per problem.
type checker struct {
	errs []FieldError
}

func (c *checker) add(field, msg string) {
	c.errs = append(c.errs, FieldError{Field: field, Message: msg})
}

func (c *checker) wrongType(field string, got jsonType, want string) {
	c.add(field, "got "+got.String()+", want "+want)
}

// version checks "v": the schema's const 1, written as an integer so that
// Envelope.V can hold it.
func (c *checker) version(v wireNumber) {
	switch {
	case v.typ == absent:
		c.add("/v", "is required")
	case v.typ == jsonNumber && v.text == "1":
	case v.typ == jsonNumber && isOne(v.text):
		c.add("/v", "value must be the integer 1, got "+v.text)
	default:
		c.add("/v", "value must be 1")
	}
}

// enum checks a required property that must be one of values, and returns it
// ("" if it is not one of them).
func (c *checker) enum(field string, f wireString, values []string) string {
	if f.typ == absent {
		c.add(field, "is required")
		return ""
	}
	if f.typ == jsonString {
		for _, v := range values {
			if f.s == v {
				return v
			}
		}
	}
	c.add(field, "value must be one of "+joinQuoted(values))
	return ""
}

// text checks a string property against r.
func (c *checker) text(field string, f wireString, r propRule) {
	switch {
	case f.typ == absent:
		if r.required {
			c.add(field, "is required")
		}
		return
	case r.rule == nil && f.typ == jsonNull:
		return
	case f.typ != jsonString:
		c.wrongType(field, f.typ, "string")
		return
	case r.rule == nil:
		return
	}
	if msg := lengthError(f.s, r.rule.min, r.rule.max); msg != "" {
		c.add(field, msg)
	}
	if slices.Contains(r.rule.reserved, f.s) {
		c.add(field, msgReservedEvent)
	}
}

// lengthError says how s breaks the length bounds, "" if it does not.
func lengthError(s string, lo, hi int) string {
	// A code point takes one to four bytes, so when lo <= 1 (always, here) a
	// length within bounds in bytes is within bounds in code points.
	if lo <= 1 && len(s) >= lo && len(s) <= hi {
		return ""
	}
	switch n := utf8.RuneCountInString(s); {
	case n < lo:
		return fmt.Sprintf("minLength: got %d, want %d", n, lo)
	case n > hi:
		return fmt.Sprintf("maxLength: got %d, want %d", n, hi)
	}
	return ""
}

// timestamp checks "ts".
func (c *checker) timestamp(t wireTime) {
	switch {
	case t.typ == absent:
		c.add("/ts", "is required")
	case t.typ != jsonString:
		c.wrongType("/ts", t.typ, "string")
	case t.notRFC3339 != "":
		c.add("/ts", quote(t.text)+" is not valid date-time: "+t.notRFC3339)
	case t.err != nil:
		c.add("/ts", t.err.Error())
	case t.t.IsZero():
		// A well-formed date-time, but always a forgotten field.
		c.add("/ts", "must be set (zero time)")
	}
}

// address checks a to object or, inside it, an except object. Unless strict
// (a deliver envelope, whose to the schema constrains) it only has to fit the
// Envelope.
func (c *checker) address(field string, a *wireAddress, strict bool) {
	switch {
	case a.typ == absent, a.typ == jsonNull && !strict:
		return
	case a.typ != jsonObject:
		c.wrongType(field, a.typ, "object")
		return
	}
	if strict && len(a.unknown) > 0 {
		c.add(field, "additional properties "+joinQuoted(a.unknown)+" not allowed")
	}
	c.idList(field, "/users", &a.users, strict)
	c.idList(field, "/rooms", &a.rooms, strict)
	c.idList(field, "/sockets", &a.sockets, strict)
	if a.all.typ != absent && a.all.typ != jsonBoolean && (strict || a.all.typ != jsonNull) {
		c.wrongType(field+"/all", a.all.typ, "boolean")
	}
	if a.except != nil {
		c.address(field+"/except", a.except, strict)
	}
}

// addressesSomeone is the target's anyOf. minItems applies to arrays only, so
// a users that is not an array satisfies its branch; its type is reported on
// its own.
func (a *wireAddress) addressesSomeone() bool {
	some := func(l *wireList) bool { return l.typ != absent && (l.typ != jsonArray || len(l.items) > 0) }
	return some(&a.users) || some(&a.rooms) || some(&a.sockets) || (a.all.typ == jsonBoolean && a.all.v)
}

// idList checks the list at field+name (joined only when reporting, to keep
// the common path free of allocations).
func (c *checker) idList(field, name string, l *wireList, strict bool) {
	switch {
	case l.typ == absent, l.typ == jsonNull && !strict:
		return
	case l.typ != jsonArray:
		c.wrongType(field+name, l.typ, "array")
		return
	}
	for i, s := range l.items {
		switch t := l.itemType(i); {
		case t == jsonNull && !strict:
		case t != jsonString:
			c.wrongType(field+name+"/"+strconv.Itoa(i), t, "string")
		case strict:
			if msg := lengthError(s, nonEmptyString.min, nonEmptyString.max); msg != "" {
				c.add(field+name+"/"+strconv.Itoa(i), msg)
			}
		}
	}
}

// heartbeatStats checks the data of a heartbeat: an object whose counts, if
// present, are non-negative integers. Other properties are free.
func (c *checker) heartbeatStats(data json.RawMessage) {
	switch t := typeOf(data); t {
	case absent:
		return
	case jsonObject:
	default:
		c.wrongType("/data", t, "object")
		return
	}
	var stats map[string]json.RawMessage
	if err := json.Unmarshal(data, &stats); err != nil {
		c.add("/data", err.Error())
		return
	}
	for _, name := range heartbeatStats {
		v, ok := stats[name]
		if !ok {
			continue
		}
		field := "/data/" + name
		if t := typeOf(v); t != jsonNumber {
			c.wrongType(field, t, "integer")
			continue
		}
		// An exponent beyond a million is no count: JSON Schema validators
		// give up on such numbers and call them not integers; so does check.
		neg, digits, exp := decimal(string(v))
		if digits != "" && (exp < 0 || exp > 1e6) {
			c.wrongType(field, jsonNumber, "integer")
		}
		if neg {
			f, _ := strconv.ParseFloat(string(v), 64)
			c.add(field, fmt.Sprintf("minimum: got %v, want 0", f))
		}
	}
}

// isOne reports whether the JSON number num equals 1 (as 1.0 or 1e0 do).
func isOne(num string) bool {
	neg, digits, exp := decimal(num)
	return !neg && digits == "1" && exp == 0
}

// decimal splits the JSON number num into its value's sign, significant
// digits (no leading or trailing zeros; "" for zero) and the power of ten
// they are scaled by: num = ±digits × 10^exp.
func decimal(num string) (neg bool, digits string, exp int) {
	num, neg = strings.CutPrefix(num, "-")
	mant := num
	if i := strings.IndexAny(num, "eE"); i >= 0 {
		mant = num[:i]
		exp = atoiSaturating(num[i+1:])
	}
	whole, frac, _ := strings.Cut(mant, ".")
	exp -= len(frac)
	digits = strings.TrimLeft(whole+frac, "0")
	trimmed := strings.TrimRight(digits, "0")
	exp += len(digits) - len(trimmed)
	return neg && trimmed != "", trimmed, exp
}

// atoiSaturating parses a JSON exponent, clamped so that it cannot overflow.
func atoiSaturating(s string) int {
	const limit = 1 << 30
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	n := 0
	for i := 0; i < len(s) && n < limit; i++ {
		n = n*10 + int(s[i]-'0')
	}
	n = min(n, limit)
	if neg {
		return -n
	}
	return n
}

// dateTimeError says why s is not an RFC 3339 date-time as JSON Schema's
// "date-time" format defines it (RFC 3339 section 5.6, leap second included),
// "" if it is one.
func dateTimeError(s string) string {
	switch {
	case len(s) < len("2006-01-02T15:04:05Z"):
		return "less than 20 characters long"
	case s[10] != 'T' && s[10] != 't':
		return "11th character must be t or T"
	}
	if !isDate(s[:10]) {
		return "invalid date element"
	}
	if !isTime(s[11:]) {
		return "invalid time element"
	}
	return ""
}

// isDate reports whether s is a date time.Parse(time.DateOnly, s) accepts
// (2006-01-02, a day that exists), without its cost: it is on the path of
// every envelope.
func isDate(s string) bool {
	if len(s) != len("2006-01-02") || s[4] != '-' || s[7] != '-' {
		return false
	}
	hi, okHi := twoDigits(s[0:2])
	lo, okLo := twoDigits(s[2:4])
	month, okM := twoDigits(s[5:7])
	day, okD := twoDigits(s[8:10])
	if !okHi || !okLo || !okM || !okD || month < 1 || month > 12 || day < 1 {
		return false
	}
	year := hi*100 + lo
	leap := year%4 == 0 && (year%100 != 0 || year%400 == 0)
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month-1]
	if month == 2 && leap {
		days = 29
	}
	return day <= days
}

// isTime reports whether s is an RFC 3339 full-time (15:04:05.999Z07:00).
func isTime(s string) bool {
	if len(s) < len("15:04:05Z") || s[2] != ':' || s[5] != ':' {
		return false
	}
	h, okH := twoDigits(s[0:2])
	m, okM := twoDigits(s[3:5])
	sec, okS := twoDigits(s[6:8])
	if !okH || !okM || !okS || h > 23 || m > 59 || sec > 60 {
		return false
	}
	s = s[8:]
	if frac, ok := strings.CutPrefix(s, "."); ok {
		n := 0
		for n < len(frac) && '0' <= frac[n] && frac[n] <= '9' {
			n++
		}
		if n == 0 {
			return false
		}
		s = frac[n:]
	}
	if s != "Z" && s != "z" {
		if len(s) != len("+07:00") || (s[0] != '+' && s[0] != '-') || s[3] != ':' {
			return false
		}
		zh, okZH := twoDigits(s[1:3])
		zm, okZM := twoDigits(s[4:6])
		if !okZH || !okZM || zh > 23 || zm > 59 {
			return false
		}
		// A leap second is 23:59:60 in UTC.
		offset := zh*60 + zm
		if s[0] == '+' {
			offset = -offset
		}
		hm := h*60 + m + offset
		if hm < 0 {
			hm += 24 * 60
		}
		h, m = hm/60, hm%60
	}
	return sec < 60 || (h == 23 && m == 59)
}

func twoDigits(s string) (int, bool) {
	if s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return 0, false
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), true
}

// quote quotes s as the JSON Schema validator's messages do: 'like this'.
func quote(s string) string {
	s = strconv.Quote(s)
	s = strings.ReplaceAll(s, `\"`, `"`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s[1:len(s)-1] + "'"
}

func joinQuoted(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = quote(v)
	}
	return strings.Join(quoted, ", ")
}
