package router

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
)

func TestEntryUnmarshallerReadsAdapterAndPayloadOnlyEntries(t *testing.T) {
	msg := message.NewMessage("uuid-1", []byte(`{"v":1}`))
	msg.Metadata.Set("kind", "deliver")
	values, err := redisstream.DefaultMarshallerUnmarshaller{}.Marshal("t", msg)
	if err != nil {
		t.Fatal(err)
	}
	stored := asRead(values)
	got, err := entryUnmarshaller{}.Unmarshal(stored)
	if err != nil || got.UUID != "uuid-1" || string(got.Payload) != `{"v":1}` || got.Metadata.Get("kind") != "deliver" {
		t.Fatalf("adapter entry: %v, %+v", err, got)
	}

	got, err = entryUnmarshaller{}.Unmarshal(map[string]any{"payload": `{"v":1,"id":"b-1"}`})
	if err != nil || got.UUID == "" || string(got.Payload) != `{"v":1,"id":"b-1"}` {
		t.Fatalf("payload-only entry: %v, %+v", err, got)
	}
	again, err := entryUnmarshaller{}.Unmarshal(map[string]any{"payload": `{"v":1,"id":"b-1"}`})
	if err != nil || again.UUID == "" || again.UUID == got.UUID {
		t.Fatalf("a second payload-only entry: %v, UUID %q after %q, want a fresh one", err, again.UUID, got.UUID)
	}

	if _, err := (entryUnmarshaller{}).Unmarshal(map[string]any{"other": "x"}); err == nil {
		t.Fatal("an entry with neither a message nor a payload: want an error")
	}
}
