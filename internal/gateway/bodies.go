package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// Body read limits: a client trickling a body byte by byte would otherwise
// hold a connection and its goroutine for as long as it likes.
const (
	// jsonBodyTimeout bounds reading a whole JSON request body (at most
	// MaxBodyBytes, 1 MiB).
	jsonBodyTimeout = 10 * time.Second
	// mediaIdle is how long a media body may stall between reads.
	mediaIdle = 60 * time.Second
	// minUploadRate is the slowest average a media body may arrive at,
	// checked once minRateGrace has passed: 1 KiB/s.
	minUploadRate = 1 << 10
	minRateGrace  = 30 * time.Second
)

// errTooSlow is a media body arriving below minUploadRate.
var errTooSlow = fmt.Errorf("%w: the body arrives slower than %d bytes/s", chat.ErrBadRequest, minUploadRate)

// isTimeout says whether err is a body read that ran out of time.
func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, errTooSlow)
}

// rateReader reads a media body: each read has mediaIdle to deliver
// something, and after minRateGrace the average must stay at
// minUploadRate or more.
type rateReader struct {
	r     io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	n     int64
	now   func() time.Time
	late  bool // a read ran out of time: the deadline stays, the connection closes
}

func newRateReader(w http.ResponseWriter, r io.ReadCloser) *rateReader {
	return &rateReader{r: r, rc: http.NewResponseController(w), start: time.Now(), now: time.Now}
}

func (s *rateReader) Read(p []byte) (int, error) {
	_ = s.rc.SetReadDeadline(s.now().Add(mediaIdle))
	n, err := s.r.Read(p)
	s.n += int64(n)
	if el := s.now().Sub(s.start); el > minRateGrace && float64(s.n)/el.Seconds() < minUploadRate && err == nil {
		err = errTooSlow
		_ = s.rc.SetReadDeadline(s.now()) // nothing more is read from this connection
	}
	if isTimeout(err) {
		s.late = true
	}
	return n, err
}

// Close closes the body.
func (s *rateReader) Close() error { return s.r.Close() }

// done clears the read deadline so the connection may serve more requests,
// unless the body came too slowly: then the server must not wait for the
// rest of it before answering.
func (s *rateReader) done() {
	if !s.late {
		_ = s.rc.SetReadDeadline(time.Time{})
	}
}
