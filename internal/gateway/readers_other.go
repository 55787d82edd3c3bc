//go:build !linux

package gateway

import "errors"

// poller does not exist here: every socket has a reader goroutine.
type poller struct{}

func newPoller() *poller { return nil }

func (p *poller) close() {}

func (p *poller) arm(*conn) error { return errors.New("gateway: no poller on this platform") }
func (p *poller) remove(*conn)    {}
