package redfish

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// qmp is a connection to a QEMU Machine Protocol socket.
type qmp struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

// qmpReply is one line QEMU sends: a greeting, a return, an error or an
// asynchronous event.
type qmpReply struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string `json:"event"`
}

// dialQMP connects to the socket and completes the capabilities
// handshake.
func dialQMP(ctx context.Context, path string) (*qmp, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	q := &qmp{conn: conn, r: bufio.NewReader(conn)}
	q.deadline(ctx)
	greeting, err := q.read()
	if err != nil || greeting.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("qmp greeting on %s: %v: %w", path, err, ErrPower)
	}
	if _, err := q.execute(ctx, "qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp handshake on %s: %w", path, err)
	}
	return q, nil
}

func (q *qmp) deadline(ctx context.Context) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(10 * time.Second)
	}
	_ = q.conn.SetDeadline(dl)
}

func (q *qmp) read() (qmpReply, error) {
	var r qmpReply
	line, err := q.r.ReadBytes('\n')
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return r, fmt.Errorf("qmp: bad reply %q: %w", line, err)
	}
	return r, nil
}

// execute runs a command and returns its "return" value; events that
// arrive meanwhile are skipped.
func (q *qmp) execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deadline(ctx)
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	data, _ := json.Marshal(req)
	if _, err := q.conn.Write(append(data, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	for {
		r, err := q.read()
		if err != nil {
			return nil, fmt.Errorf("qmp %s: %w", command, err)
		}
		switch {
		case r.Error != nil:
			return nil, fmt.Errorf("qmp %s: %s: %s: %w", command, r.Error.Class, r.Error.Desc, ErrPower)
		case r.Return != nil:
			return r.Return, nil
		}
	}
}

func (q *qmp) close() error {
	err := q.conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
