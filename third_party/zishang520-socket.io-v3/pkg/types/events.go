package types

import (
	"reflect"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/zishang520/socket.io/v3/pkg/log"
)

const (
	// Version current version number
	EventVersion = "0.0.3"
)

var eventsLog = log.NewLog("engine:events")

type (
	// EventName is just a type of string, it's the event name
	EventName string
	// Listener is the type of a Listener, it's a func which receives any,optional, arguments from the caller/emmiter
	EventListener func(...any)
	// Events the type for registered listeners, it's just a map[string][]func(...any)
	Events map[EventName][]EventListener
	// EventEmitter is the message/or/event manager
	EventEmitter interface {
		// AddListener is an alias for .On(eventName, listener).
		AddListener(EventName, ...EventListener) error
		// Emit fires a particular event,
		// Synchronously calls each of the listeners registered for the event named
		// eventName, in the order they were registered,
		// passing the supplied arguments to each.
		Emit(EventName, ...any)
		// EventNames returns an array listing the events for which the emitter has registered listeners.
		// The values in the array will be strings.
		EventNames() []EventName
		// ListenerCount returns the length of all registered listeners to a particular event
		ListenerCount(EventName) int
		// Listeners returns a copy of the array of listeners for the event named eventName.
		Listeners(EventName) []EventListener
		// On registers a particular listener for an event, func receiver parameter(s) is/are optional
		On(EventName, ...EventListener) error
		// Once adds a one time listener function for the event named eventName.
		// The next time eventName is triggered, this listener is removed and then invoked.
		Once(EventName, ...EventListener) error
		// RemoveAllListeners removes all listeners, or those of the specified eventName.
		// Note that it will remove the event itself.
		// Returns an indicator if event and listeners were found before the remove.
		RemoveAllListeners(EventName) bool
		// RemoveListener removes given listener from the event named eventName.
		// Returns an indicator whether listener was removed
		RemoveListener(EventName, EventListener) bool
		// Clear removes all events and all listeners, restores Events to an empty value
		Clear()
		// Len returns the length of all registered events
		Len() int
	}

	// emmiter keeps every listener of every event in one slice, in the
	// order they were added: an emitter has a handful, and one slice of
	// them is several times smaller than the concurrent map upstream uses
	// (every connection has several emitters), and smaller than a list per
	// event. The slice is never changed in place once published, except by
	// appending past its length: Emit reads it without holding the lock.
	// An event whose listeners were all removed keeps one entry without a
	// listener, so that it still counts in Len and EventNames, as upstream.
	// (Patched by web3-socket; see third_party/README.md.)
	emmiter struct {
		mu        sync.RWMutex
		listeners []eventEntry
	}

	eventEntry struct {
		name EventName
		fn   EventListener // nil: the event's listeners were all removed
		ptr  uintptr
	}
)

// CopyTo copies the event listeners to an EventEmitter
func (e Events) CopyTo(emitter EventEmitter) {
	if len(e) > 0 {
		// register the events to/with their listeners
		for evt, listeners := range e {
			if len(listeners) > 0 {
				_ = emitter.AddListener(evt, listeners...)
			}
		}
	}
}

// New returns a new, empty, EventEmitter
func NewEventEmitter() EventEmitter {
	return &emmiter{}
}

// load returns the listeners of every event, to be read and not changed.
func (e *emmiter) load() []eventEntry {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.listeners
}

func (e *emmiter) addListeners(listeners []eventEntry) error {
	if len(listeners) == 0 {
		return nil
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	// Appending writes only past the length readers may hold.
	e.listeners = append(e.listeners, listeners...)
	return nil
}

func (e *emmiter) AddListener(evt EventName, listeners ...EventListener) error {
	if len(listeners) == 0 {
		return nil
	}

	events := make([]eventEntry, 0, len(listeners))
	for _, event := range listeners {
		if event != nil {
			events = append(events, eventEntry{name: evt, fn: event, ptr: reflect.ValueOf(event).Pointer()})
		}
	}

	return e.addListeners(events)
}

// Alias: [AddListener]
func (e *emmiter) On(evt EventName, listeners ...EventListener) error {
	return e.AddListener(evt, listeners...)
}

func (e *emmiter) Emit(evt EventName, data ...any) {
	for _, event := range e.load() {
		if event.name == evt && event.fn != nil {
			func() {
				defer func() {
					if r := recover(); r != nil {
						// Prevent a panicking listener from crashing the emitter.
						eventsLog.Errorf("event listener panic recovered: %v\n%s", r, debug.Stack())
					}
				}()
				event.fn(data...)
			}()
		}
	}
}

func (e *emmiter) EventNames() []EventName {
	var names []EventName
	for _, l := range e.load() {
		if !slices.Contains(names, l.name) {
			names = append(names, l.name)
		}
	}
	if names == nil {
		names = []EventName{}
	}
	return names
}

func (e *emmiter) ListenerCount(evt EventName) int {
	n := 0
	for _, l := range e.load() {
		if l.name == evt && l.fn != nil {
			n++
		}
	}
	return n
}

func (e *emmiter) Listeners(evt EventName) []EventListener {
	var listeners []EventListener
	known := false
	for _, l := range e.load() {
		if l.name == evt {
			known = true
			if l.fn != nil {
				listeners = append(listeners, l.fn)
			}
		}
	}
	if known && listeners == nil {
		listeners = []EventListener{}
	}
	return listeners
}

type oneTimeListener struct {
	fired sync.Once

	evt     EventName
	emitter *emmiter
	fn      EventListener
}

func (l *oneTimeListener) execute(vals ...any) {
	l.fired.Do(func() {
		// Remove before invoking so reentrant Emit cannot enter this sync.Once.
		l.emitter.RemoveListener(l.evt, l.fn)
		l.fn(vals...)
	})
}

func (e *emmiter) Once(evt EventName, listeners ...EventListener) error {
	if len(listeners) == 0 {
		return nil
	}

	events := make([]eventEntry, 0, len(listeners))
	for _, event := range listeners {
		if event != nil {
			oneTime := &oneTimeListener{evt: evt, emitter: e, fn: event}
			events = append(events, eventEntry{name: evt, fn: oneTime.execute, ptr: reflect.ValueOf(event).Pointer()})
		}
	}
	return e.addListeners(events)
}

// RemoveListener removes the specified listener from the listener array for the event named eventName.
func (e *emmiter) RemoveListener(evt EventName, listener EventListener) bool {
	if listener == nil {
		return false
	}

	targetPtr := reflect.ValueOf(listener).Pointer()

	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.listeners
	found, others, empty := -1, false, false
	for j := range old {
		if old[j].name != evt {
			continue
		}
		switch {
		case old[j].fn == nil:
			empty = true
		case found < 0 && old[j].ptr == targetPtr:
			found = j
		default:
			others = true
		}
	}
	if found < 0 {
		return false
	}
	// A new slice: Emit may be reading the old one.
	if others || empty {
		e.listeners = append(old[:found:found], old[found+1:]...)
	} else {
		// The event's last listener: the event stays, without listeners.
		e.listeners = slices.Clone(old)
		e.listeners[found].fn, e.listeners[found].ptr = nil, 0
	}
	return true
}

func (e *emmiter) RemoveAllListeners(evt EventName) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !slices.ContainsFunc(e.listeners, func(l eventEntry) bool { return l.name == evt }) {
		return false
	}
	e.listeners = slices.DeleteFunc(slices.Clone(e.listeners), func(l eventEntry) bool { return l.name == evt })
	return true
}

func (e *emmiter) Clear() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.listeners = nil
}

func (e *emmiter) Len() int {
	return len(e.EventNames())
}
