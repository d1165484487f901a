package router

import (
	"maps"
	"strconv"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/vmihailenco/msgpack"
)

// metadataCases cover every length form of maps and strings the msgpack
// library writes (fix, 8, 16 and 32 bits).
func metadataCases() []message.Metadata {
	many := message.Metadata{}
	for i := range 70_000 { // above 65,535 keys: map32
		many[strings.Repeat("k", 1+i%40)+string(rune('a'+i%26))+strconv.Itoa(i)] = strconv.Itoa(i)
	}
	sixteen := message.Metadata{}
	for i := range 16 { // the first map16
		sixteen["key"+strconv.Itoa(i)] = "v"
	}
	return []message.Metadata{
		{"kind": "deliver", "user": "u1"},
		{"empty": "", "unicode": "häagen — 日本"},
		{strings.Repeat("a", 31): strings.Repeat("b", 32)},   // fixstr, str8
		{strings.Repeat("c", 255): strings.Repeat("d", 256)}, // str8, str16
		{"long": strings.Repeat("e", 1<<16)},                 // str32
		sixteen,
		many,
	}
}

func TestMetadataWeWriteIsWhatTheLibraryReads(t *testing.T) {
	for _, md := range metadataCases() {
		var got message.Metadata
		if err := msgpack.Unmarshal(appendMetadata(nil, md), &got); err != nil {
			t.Fatalf("the library cannot read %d keys we wrote: %v", len(md), err)
		}
		if !maps.Equal(got, md) {
			t.Fatalf("the library read %d keys back as %d, or other values", len(md), len(got))
		}
	}
}

func TestMetadataTheLibraryWritesIsWhatWeRead(t *testing.T) {
	for _, md := range metadataCases() {
		b, err := msgpack.Marshal(md)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeStringMap(string(b), 1)
		if err != nil {
			t.Fatalf("we cannot read %d keys the library wrote: %v", len(md), err)
		}
		if !maps.Equal(got, md) {
			t.Fatalf("we read %d keys back as %d, or other values", len(md), len(got))
		}
	}
}

func TestMetadataReadsNilAndBinaryAsTheLibraryDoes(t *testing.T) {
	// {"a": nil, "b": bin8 "xy", "c": str16 "z"}
	md := "\x83" + "\xa1a\xc0" + "\xa1b\xc4\x02xy" + "\xa1c\xda\x00\x01z"
	var want message.Metadata
	if err := msgpack.Unmarshal([]byte(md), &want); err != nil {
		t.Fatal(err)
	}
	got, err := decodeStringMap(md, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) || got["b"] != "xy" {
		t.Fatalf("read %v, the library reads %v", got, want)
	}
}

func TestMetadataOtherMsgpackGoesToTheLibrary(t *testing.T) {
	// A map with an integer value: not ours to take apart, and the library
	// refuses it for a map of strings, as the adapter's reader did.
	if _, err := decodeStringMap("\x81\xa1a\x01", 0); err == nil {
		t.Fatal("decodeStringMap took an integer value")
	}
	if _, err := decodeMetadata("\x81\xa1a\x01", 0); err == nil {
		t.Fatal("decodeMetadata read an integer as a string")
	}
	// Truncated: a str8 that says 5 bytes and has 2.
	if _, err := decodeMetadata("\x81\xa1a\xd9\x05ab", 0); err == nil {
		t.Fatal("decodeMetadata read a truncated string")
	}
	// Trailing bytes after the map are refused by us; the library ignores
	// them and reads the map.
	got, err := decodeMetadata("\x81\xa1a\xa1b\xff", 0)
	if err != nil || got["a"] != "b" {
		t.Fatalf("decodeMetadata with a trailing byte = %v, %v; want the library's reading", got, err)
	}
}

func TestEntryFieldsAreTheAdaptersBothWays(t *testing.T) {
	msg := message.NewMessage("uuid-1", []byte(`{"kind":"deliver"}`))
	msg.Metadata.Set("kind", "deliver")
	msg.Metadata.Set("user", "u7")

	fields, err := marshalEntry(msg)
	if err != nil {
		t.Fatal(err)
	}
	ours := fieldMap(fields)
	theirs, err := redisstream.DefaultMarshallerUnmarshaller{}.Marshal("t", msg)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(keysOf(ours), keysOf(theirs)) {
		t.Fatalf("fields %v, the adapter writes %v", keysOf(ours), keysOf(theirs))
	}
	// Redis hands fields back as strings.
	for name, values := range map[string]map[string]any{"ours": ours, "the adapter's": theirs} {
		read := asRead(values)
		a, err := unmarshalAdapterEntry(read)
		if err != nil {
			t.Fatalf("reading %s entry: %v", name, err)
		}
		b, err := redisstream.DefaultMarshallerUnmarshaller{}.Unmarshal(read)
		if err != nil {
			t.Fatalf("the adapter reading %s entry: %v", name, err)
		}
		if a.UUID != b.UUID || string(a.Payload) != string(b.Payload) || !maps.Equal(a.Metadata, b.Metadata) {
			t.Fatalf("%s entry: we read %s %q %v, the adapter %s %q %v", name,
				a.UUID, a.Payload, a.Metadata, b.UUID, b.Payload, b.Metadata)
		}
	}

	msg.Metadata.Set(redisstream.UUIDHeaderKey, "x")
	if _, err := marshalEntry(msg); err == nil {
		t.Fatal("marshalEntry took metadata with the reserved UUID key")
	}
	if _, err := unmarshalAdapterEntry(map[string]any{"payload": "p"}); err == nil {
		t.Fatal("unmarshalAdapterEntry took an entry without a UUID")
	}
}

// fieldMap returns the field-value pairs of an XADD of f as a map.
func fieldMap(f entryFields) map[string]any {
	values := f.values()
	m := make(map[string]any, len(values)/2)
	for i := 0; i+1 < len(values); i += 2 {
		m[values[i].(string)] = values[i+1]
	}
	return m
}

// asRead returns an entry's fields as Redis hands them back: strings.
func asRead(values map[string]any) map[string]any {
	read := make(map[string]any, len(values))
	for k, v := range values {
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		read[k] = v
	}
	return read
}

func keysOf(m map[string]any) map[string]bool {
	keys := map[string]bool{}
	for k := range m {
		keys[k] = true
	}
	return keys
}

// FuzzDecodeMetadata: whatever the bytes, we read what the msgpack library
// reads, and refuse what it refuses.
func FuzzDecodeMetadata(f *testing.F) {
	for _, md := range metadataCases()[:5] {
		f.Add(appendMetadata(nil, md))
	}
	f.Add([]byte("\x83\xa1a\xc0\xa1b\xc4\x02xy\xa1c\xda\x00\x01z"))
	f.Add([]byte("\x81\xa1a\x01"))
	f.Add([]byte("\xc0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want message.Metadata
		wantErr := msgpack.Unmarshal(b, &want)
		got, err := decodeMetadata(string(b), 0)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: error %v, the library's %v", b, err, wantErr)
		}
		if err == nil && !maps.Equal(got, want) {
			t.Fatalf("%q: read %v, the library reads %v", b, got, want)
		}
	})
}

func BenchmarkEntryUnmarshal(b *testing.B) {
	msg := message.NewMessage("uuid-1", []byte(`{"id":"m1","kind":"deliver","to":{"users":["u1"]},"event":"e","data":{"n":1}}`))
	for k, v := range map[string]string{"kind": "deliver", "id": "m1", "user": "u1", "recovery": "1"} {
		msg.Metadata.Set(k, v)
	}
	fields, err := marshalEntry(msg)
	if err != nil {
		b.Fatal(err)
	}
	read := asRead(fieldMap(fields))
	benchAdapterAndOurs(b, func() error {
		_, err := redisstream.DefaultMarshallerUnmarshaller{}.Unmarshal(read)
		return err
	}, func() error {
		_, err := unmarshalAdapterEntry(read)
		return err
	})
}

// benchAdapterAndOurs runs the adapter's way and ours as two sub-benchmarks
// of one run, for a ratio on a noisy machine.
func benchAdapterAndOurs(b *testing.B, adapter, ours func() error) {
	for name, f := range map[string]func() error{"adapter": adapter, "ours": ours} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEntryMarshal(b *testing.B) {
	msg := message.NewMessage("uuid-1", []byte(`{"id":"m1","kind":"deliver","to":{"users":["u1"]},"event":"e","data":{"n":1}}`))
	for k, v := range map[string]string{"kind": "deliver", "id": "m1", "user": "u1", "recovery": "1"} {
		msg.Metadata.Set(k, v)
	}
	benchAdapterAndOurs(b, func() error {
		_, err := redisstream.DefaultMarshallerUnmarshaller{}.Marshal("t", msg)
		return err
	}, func() error {
		_, err := marshalEntry(msg)
		return err
	})
}
