package jsonscan

import "testing"

func TestScannerWalksAnObject(t *testing.T) {
	doc := []byte(` {"a": "x", "b" : [1, {"c": "]"}], "é": null, "d": 12.5e1, "e": "\u0041"} `)
	for _, shared := range []bool{false, true} {
		s := New(doc)
		if shared {
			s = NewShared(doc)
		}
		s.Space()
		if !s.Consume('{') {
			t.Fatal("no object")
		}
		var names []string
		var kinds []Kind
		for i := 0; ; i++ {
			name, more, ok := s.NextName(i)
			if !ok {
				t.Fatalf("property %d: not a plain name", i)
			}
			if !more {
				break
			}
			names = append(names, name)
			k, _, ok := s.Value()
			if !ok {
				t.Fatalf("property %s: value refused", name)
			}
			kinds = append(kinds, k)
		}
		if !s.AtEnd() {
			t.Fatal("not at the end after the object")
		}
		want := []string{"a", "b", "é", "d", "e"}
		wantKinds := []Kind{String, Array, Null, Number, String}
		for i := range want {
			if names[i] != want[i] || kinds[i] != wantKinds[i] {
				t.Fatalf("shared %v: got %v %v, want %v %v", shared, names, kinds, want, wantKinds)
			}
		}
	}
}

func TestPlainStringRefusesEscapesAndBadUTF8(t *testing.T) {
	for _, doc := range []string{`"a\"b"`, `"\u0041"`, "\"\xff\"", "\"a\tb\"", `"open`} {
		s := New([]byte(doc))
		if text, ok := s.PlainString(); ok {
			t.Errorf("%q: got %q, want it left to encoding/json", doc, text)
		}
	}
	s := NewShared([]byte(`"héllo"`))
	if text, ok := s.PlainString(); !ok || text != "héllo" {
		t.Fatalf("got %q %v", text, ok)
	}
}

func TestValueJudgesWhatItSkips(t *testing.T) {
	for doc, ok := range map[string]bool{
		`{"a":[1,2]}`: true, `[1,`: false, `tru`: false, `-1.5`: true, `"a\u00"`: false, `{"a":}`: false,
	} {
		s := New([]byte(doc))
		if _, _, got := s.Value(); got != ok {
			t.Errorf("%s: Value ok %v, want %v", doc, got, ok)
		}
	}
}
