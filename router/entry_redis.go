package router

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/vmihailenco/msgpack"
)

// The adapter's stream entries (watermill-redisstream's
// DefaultMarshallerUnmarshaller) hold three fields: the message UUID, the
// metadata as a msgpack map of strings, and the payload. marshalEntry and
// unmarshalAdapterEntry write and read the same fields without the msgpack
// library's reflection, which took about a tenth of an instance's CPU when
// batches of a hundred messages arrived through the REST API: metadata is
// always a map of strings, so its encoding is a header and strings.
// Anything else in the metadata field (another writer's msgpack) is handed
// to the library, which reads what it can as before.

// entryFields are the fields of a stream entry as the adapter writes them.
// A publisher keeps them for a replay after a Redis restart: flat, they
// hold no map and no boxed values per entry, only the bytes.
type entryFields struct {
	uuid     string
	metadata []byte // msgpack; nil for a message without metadata
	payload  []byte
}

// marshalEntry returns the fields of msg's stream entry, as the adapter's
// marshaller does.
func marshalEntry(msg *message.Message) (entryFields, error) {
	if msg.Metadata.Get(redisstream.UUIDHeaderKey) != "" {
		return entryFields{}, fmt.Errorf("metadata %s is reserved by watermill for message UUID", redisstream.UUIDHeaderKey)
	}
	var md []byte
	if len(msg.Metadata) > 0 {
		size := 5 // the longest map header
		for k, v := range msg.Metadata {
			size += len(k) + len(v) + 10 // and the longest string headers
		}
		md = appendMetadata(make([]byte, 0, size), msg.Metadata)
	}
	return entryFields{uuid: msg.UUID, metadata: md, payload: msg.Payload}, nil
}

// values returns the field-value pairs of an XADD.
func (f entryFields) values() []any {
	return []any{redisstream.UUIDHeaderKey, f.uuid, "metadata", f.metadata, "payload", f.payload}
}

// unmarshalAdapterEntry reads an entry the adapter's marshaller (or
// marshalEntry) wrote. Room is left in the metadata for one more key, the
// entry id unmarshalEntry adds.
func unmarshalAdapterEntry(values map[string]any) (*message.Message, error) {
	uuid, ok := values[redisstream.UUIDHeaderKey].(string)
	if !ok {
		return nil, fmt.Errorf("%s key is missing as part of the message", redisstream.UUIDHeaderKey)
	}
	payload, _ := values["payload"].(string)
	msg := message.NewMessage(uuid, []byte(payload))
	if md, _ := values["metadata"].(string); md != "" {
		metadata, err := decodeMetadata(md, 1)
		if err != nil {
			return nil, fmt.Errorf("unmarshal metadata: %w", err)
		}
		msg.Metadata = metadata
	}
	return msg, nil
}

// msgpack format bytes (github.com/msgpack/msgpack/blob/master/spec.md).
const (
	mpNil   = 0xc0
	mpBin8  = 0xc4
	mpBin16 = 0xc5
	mpBin32 = 0xc6
	mpStr8  = 0xd9
	mpStr16 = 0xda
	mpStr32 = 0xdb
	mpMap16 = 0xde
	mpMap32 = 0xdf
	// fixmap is 0x80-0x8f (the low 4 bits are the length), fixstr
	// 0xa0-0xbf (the low 5 bits).
	mpFixMap     = 0x80
	mpFixMapMask = 0xf0
	mpFixStr     = 0xa0
	mpFixStrMask = 0xe0
)

// appendMetadata appends md as a msgpack map of strings, in the shortest
// forms, as the msgpack library writes it (keys in map order, which the
// library does not sort either).
func appendMetadata(b []byte, md message.Metadata) []byte {
	if n := len(md); n < 16 {
		b = append(b, mpFixMap|byte(n))
	} else {
		b = appendSize(b, n, mpMap16, mpMap32)
	}
	for k, v := range md {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, mpFixStr|byte(n))
	case n < 1<<8:
		b = append(b, mpStr8, byte(n))
	default:
		b = appendSize(b, n, mpStr16, mpStr32)
	}
	return append(b, s...)
}

// appendSize appends the format byte c16 and n in 16 bits, or, when n needs
// more, c32 and n in 32 bits.
func appendSize(b []byte, n int, c16, c32 byte) []byte {
	if n < 1<<16 {
		return binary.BigEndian.AppendUint16(append(b, c16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, c32), uint32(n))
}

// errNotStringMap says the metadata is msgpack this reader does not take
// apart itself.
var errNotStringMap = errors.New("not a msgpack map of strings")

// decodeMetadata reads a msgpack map of strings (nil values read as ""),
// with room for spare more keys. The strings share md's memory. Any other
// encoding goes to the msgpack library, which reads it as the adapter did.
func decodeMetadata(md string, spare int) (message.Metadata, error) {
	if m, err := decodeStringMap(md, spare); err == nil {
		return m, nil
	}
	m := make(message.Metadata, spare)
	if err := msgpack.Unmarshal([]byte(md), &m); err != nil {
		return nil, err
	}
	return m, nil
}

func decodeStringMap(md string, spare int) (message.Metadata, error) {
	d := mpReader{s: md}
	n, err := d.mapLen()
	if err != nil {
		return nil, err
	}
	// Each pair takes two bytes at least: a count the rest cannot hold is
	// not a map of strings, whatever the library makes of it.
	if n > len(d.s)/2 {
		return nil, errNotStringMap
	}
	m := make(message.Metadata, n+spare)
	for range n {
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		v, err := d.str()
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	if len(d.s) != 0 {
		return nil, errNotStringMap
	}
	return m, nil
}

// mpReader reads msgpack from the front of s.
type mpReader struct{ s string }

func (d *mpReader) mapLen() (int, error) {
	if len(d.s) == 0 {
		return 0, errNotStringMap
	}
	c := d.s[0]
	switch {
	case c&mpFixMapMask == mpFixMap:
		d.s = d.s[1:]
		return int(c & 0x0f), nil
	case c == mpMap16:
		return d.length(2)
	case c == mpMap32:
		return d.length(4)
	}
	return 0, errNotStringMap
}

// str reads a string; nil reads as "" and binary as its bytes, as the
// library reads them into a string.
func (d *mpReader) str() (string, error) {
	if len(d.s) == 0 {
		return "", errNotStringMap
	}
	c := d.s[0]
	var n int
	var err error
	switch {
	case c&mpFixStrMask == mpFixStr:
		d.s, n = d.s[1:], int(c&0x1f)
	case c == mpNil:
		d.s = d.s[1:]
		return "", nil
	case c == mpStr8 || c == mpBin8:
		n, err = d.length(1)
	case c == mpStr16 || c == mpBin16:
		n, err = d.length(2)
	case c == mpStr32 || c == mpBin32:
		n, err = d.length(4)
	default:
		return "", errNotStringMap
	}
	if err != nil {
		return "", err
	}
	if n > len(d.s) {
		return "", errNotStringMap
	}
	s := d.s[:n]
	d.s = d.s[n:]
	return s, nil
}

// length reads the size big-endian unsigned integer after the format byte.
func (d *mpReader) length(size int) (int, error) {
	if len(d.s) < 1+size {
		return 0, errNotStringMap
	}
	b := d.s[1 : 1+size]
	var n uint64
	for i := range size {
		n = n<<8 | uint64(b[i])
	}
	d.s = d.s[1+size:]
	if n > uint64(len(d.s)) {
		// Longer than what is left: not a map of strings this reader
		// can take apart (the library will say what is wrong).
		return 0, errNotStringMap
	}
	return int(n), nil
}
