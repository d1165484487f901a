//go:build !linux

package bridge

import "errors"

// wsPoller needs epoll; elsewhere every WebSocket keeps a reader waiting in
// its read (transport_websocket_poll_linux.go).
type wsPoller struct{}

func newWSPoller() (*wsPoller, error) {
	return nil, errors.New("websocket poller: needs epoll (Linux)")
}

func (*wsPoller) newID() uint64            { return 0 }
func (*wsPoller) close()                   {}
func (*wsPoller) add(*wsTransport) error   { return errors.ErrUnsupported }
func (*wsPoller) rearm(*wsTransport) error { return errors.ErrUnsupported }
func (*wsPoller) remove(*wsTransport)      {}
