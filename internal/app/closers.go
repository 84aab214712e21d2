package app

import (
	"errors"
	"net"
)

// closers is what Start has opened, each with the function that closes it,
// in the order opened. A failed start and the end of a shutdown close them
// the same way: last opened first, so that nothing is closed while
// something opened after it (and so perhaps using it) still runs.
type closers []func() error

// push adds close as the first to run.
func (c *closers) push(close func() error) { *c = append(*c, close) }

// closeAll runs every closer, last pushed first, even past a failing one,
// and forgets them; the errors are joined.
func (c *closers) closeAll() error {
	var errs []error
	for i := len(*c) - 1; i >= 0; i-- {
		errs = append(errs, (*c)[i]())
	}
	*c = nil
	return errors.Join(errs...)
}

// ignoreClosed drops the error of closing what was closed already: a
// server closes its listeners, and the listener's own closer runs after it.
func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
