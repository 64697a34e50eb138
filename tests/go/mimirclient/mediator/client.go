package mediator

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// RequestTimeout is the real client's REQ_TIMEOUT_MS (§1.5).
const RequestTimeout = 10 * time.Second

// ServerError is an ERR response.
type ServerError struct {
	Cmd  byte
	Text string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("server error for cmd 0x%02x: %q", e.Cmd, e.Text)
}

// ErrTimeout is returned when a request gets no response in time.
var ErrTimeout = errors.New("timeout")

// Push is a server-initiated frame.
type Push struct {
	Code     uint16
	Payload  []byte
	Received time.Time
}

func (p Push) String() string {
	s := fmt.Sprintf("%s push (%d bytes)", PushName(p.Code), len(p.Payload))
	if elems, err := Decode(p.Payload); err == nil {
		s += fmt.Sprintf(" %v", elems)
		if p.Code == PushGotMessage {
			if m, err := ParseGotMessage(p.Payload); err == nil && len(m.Blob) > 0 {
				s += fmt.Sprintf(" blob[0]=0x%02x", m.Blob[0])
			}
		}
	}
	return s
}

// Stream is what a session runs on: one bidirectional QUIC stream.
type Stream interface {
	io.ReadWriteCloser
}

// Client is one mediator session on one stream.
type Client struct {
	Name    string
	Timeout time.Duration

	stream Stream
	wmu    sync.Mutex

	mu      sync.Mutex
	pending map[uint16]chan Frame
	pushes  []Push
	pushSig chan struct{} // closed and replaced whenever pushes change
	readErr error
	done    chan struct{}
	logf    func(format string, a ...any)
	stray   []Frame // responses nobody waited for
	onPush  func(Push) bool
}

// NewClient writes the preamble and starts the reader goroutine.
func NewClient(name string, s Stream, logf func(string, ...any)) (*Client, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	c := &Client{
		Name:    name,
		Timeout: RequestTimeout,
		stream:  s,
		pending: map[uint16]chan Frame{},
		pushSig: make(chan struct{}),
		done:    make(chan struct{}),
		logf:    logf,
	}
	if _, err := s.Write(Preamble); err != nil {
		return nil, fmt.Errorf("%s: write preamble: %w", name, err)
	}
	go c.readLoop()
	return c, nil
}

func (c *Client) readLoop() {
	var err error
	for {
		var f Frame
		f, err = ReadFrame(c.stream)
		if err != nil {
			break
		}
		if f.IsPush() {
			p := Push{Code: f.ReqID, Payload: f.Payload, Received: time.Now()}
			c.mu.Lock()
			h := c.onPush
			c.mu.Unlock()
			if h != nil && h(p) {
				continue
			}
			c.mu.Lock()
			c.pushes = append(c.pushes, p)
			close(c.pushSig)
			c.pushSig = make(chan struct{})
			c.mu.Unlock()
			c.logf("%s <- push %s (%d bytes)", c.Name, PushName(f.ReqID), len(f.Payload))
			continue
		}
		c.mu.Lock()
		ch, ok := c.pending[f.ReqID]
		if ok {
			delete(c.pending, f.ReqID)
		} else {
			c.stray = append(c.stray, f)
		}
		c.mu.Unlock()
		if ok {
			ch <- f
		} else {
			c.logf("%s <- unexpected response status %d reqId 0x%04x (%d bytes)", c.Name, f.Status, f.ReqID, len(f.Payload))
		}
	}
	c.mu.Lock()
	c.readErr = err
	close(c.pushSig)
	c.pushSig = make(chan struct{})
	c.mu.Unlock()
	close(c.done)
}

// SetPushHandler installs h, which the reader calls for every push as it
// arrives, in stream order and before any later frame is dispatched (so a
// response to a request sent after the push was queued by the server is
// seen only after h has run for it). If h returns true the push is
// consumed; otherwise it is queued for WaitPush as usual. h must not call
// the Client's methods. nil removes the handler.
func (c *Client) SetPushHandler(h func(Push) bool) {
	c.mu.Lock()
	c.onPush = h
	c.mu.Unlock()
}

// Done is closed when the reader stops (EOF or error).
func (c *Client) Done() <-chan struct{} { return c.done }

// ReadErr is the error that stopped the reader (io.EOF for a clean close).
func (c *Client) ReadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

// Stray returns responses that arrived for no outstanding request.
func (c *Client) Stray() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Frame(nil), c.stray...)
}

// Close closes the stream (for QUIC: the send direction, a FIN).
func (c *Client) Close() error { return c.stream.Close() }

// Stream returns the underlying stream.
func (c *Client) Stream() Stream { return c.stream }

func randomReqID(busy map[uint16]chan Frame) uint16 {
	var b [2]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err)
		}
		id := binary.BigEndian.Uint16(b[:])
		if id == 0 || IsPushCode(id) {
			continue
		}
		if _, ok := busy[id]; ok {
			continue
		}
		return id
	}
}

// RoundTrip sends one request with a random reqId and waits for the frame
// with that reqId. It returns the raw frame (OK or ERR).
func (c *Client) RoundTrip(cmd byte, payload []byte) (Frame, error) {
	ch := make(chan Frame, 1)
	c.mu.Lock()
	if c.readErr != nil {
		err := c.readErr
		c.mu.Unlock()
		return Frame{}, fmt.Errorf("%s: session closed: %w", c.Name, err)
	}
	id := randomReqID(c.pending)
	c.pending[id] = ch
	c.mu.Unlock()
	c.logf("%s -> cmd 0x%02x reqId 0x%04x (%d bytes)", c.Name, cmd, id, len(payload))

	c.wmu.Lock()
	_, err := c.stream.Write(EncodeRequest(cmd, id, payload))
	c.wmu.Unlock()
	if err != nil {
		c.forget(id)
		return Frame{}, fmt.Errorf("%s: write cmd 0x%02x: %w", c.Name, cmd, err)
	}
	t := time.NewTimer(c.Timeout)
	defer t.Stop()
	select {
	case f := <-ch:
		return f, nil
	case <-c.done:
		// The reader may have delivered the response just before stopping.
		select {
		case f := <-ch:
			return f, nil
		default:
		}
		c.forget(id)
		return Frame{}, fmt.Errorf("%s: cmd 0x%02x: session closed before response: %v", c.Name, cmd, c.ReadErr())
	case <-t.C:
		c.forget(id)
		return Frame{}, fmt.Errorf("%s: cmd 0x%02x: %w after %v", c.Name, cmd, ErrTimeout, c.Timeout)
	}
}

func (c *Client) forget(id uint16) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Request sends a request and returns the OK payload, or a *ServerError for
// an ERR frame.
func (c *Client) Request(cmd byte, payload []byte) ([]byte, error) {
	f, err := c.RoundTrip(cmd, payload)
	if err != nil {
		return nil, err
	}
	if f.Status == StatusErr {
		text, perr := DecodeErrPayload(f.Payload)
		if perr != nil {
			return nil, fmt.Errorf("%s: cmd 0x%02x: malformed ERR frame: %w", c.Name, cmd, perr)
		}
		return nil, &ServerError{Cmd: cmd, Text: text}
	}
	return f.Payload, nil
}

// WaitPush waits up to timeout for a queued push with the given code for
// which match returns true (match may be nil), removes it from the queue
// and returns it. Pushes that do not match stay queued.
func (c *Client) WaitPush(code uint16, match func(Push) bool, timeout time.Duration) (Push, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i, p := range c.pushes {
			if p.Code == code && (match == nil || match(p)) {
				c.pushes = append(c.pushes[:i:i], c.pushes[i+1:]...)
				c.mu.Unlock()
				return p, nil
			}
		}
		sig := c.pushSig
		closed := c.readErr != nil
		c.mu.Unlock()
		if closed {
			return Push{}, fmt.Errorf("%s: session closed while waiting for %s push: %v", c.Name, PushName(code), c.ReadErr())
		}
		select {
		case <-sig:
		case <-deadline.C:
			return Push{}, fmt.Errorf("%s: no matching %s push within %v (queued: %v)", c.Name, PushName(code), timeout, c.Pending())
		}
	}
}

// Pending returns a copy of the queued, unconsumed pushes.
func (c *Client) Pending() []Push {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Push(nil), c.pushes...)
}

// TakeAll removes and returns all queued pushes.
func (c *Client) TakeAll() []Push {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pushes
	c.pushes = nil
	return p
}

// Remove drops queued pushes for which match returns true and returns them.
func (c *Client) Remove(match func(Push) bool) []Push {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keep, gone []Push
	for _, p := range c.pushes {
		if match(p) {
			gone = append(gone, p)
		} else {
			keep = append(keep, p)
		}
	}
	c.pushes = keep
	return gone
}
