// Package redfish drives a machine's BMC through DMTF Redfish: it reads
// and stages BIOS attributes (applied by the BMC at the next reset), sets
// a one-time boot device and switches power. The server (power service)
// and the agent (BIOS driver) share it; it imports neither.
//
// A Client logs in once (a Redfish session, or HTTP basic auth) and then
// serves calls, each bounded by its own context. It is built on
// github.com/stmcginnis/gofish.
package redfish

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/common"
	gfredfish "github.com/stmcginnis/gofish/redfish"
)

// Client talks to one BMC and one of its systems. It is safe for
// concurrent use.
type Client struct {
	ep   Endpoint
	base string // https://host[:port]
	http *http.Client

	systemURI string
	systemID  string

	mu      sync.Mutex
	basic   bool // HTTP basic auth instead of a session
	session *gofish.Session
	closed  bool
}

// Dial connects to the BMC, logs in and finds the system to manage
// (Endpoint.SystemID, or the first by ID). Errors name the endpoint;
// refused credentials give ErrAuth.
func Dial(ctx context.Context, ep Endpoint) (*Client, error) {
	base, err := ep.baseURL()
	if err != nil {
		return nil, err
	}
	if ep.Username == "" {
		return nil, fmt.Errorf("bmc %s: username is empty: %w", base, ErrInvalid)
	}
	hc, err := ep.httpClient()
	if err != nil {
		return nil, fmt.Errorf("bmc %s: %w", base, err)
	}
	c := &Client{ep: ep, base: base, http: hc, basic: ep.BasicAuth}
	if !c.basic {
		if err := c.login(ctx); err != nil {
			return nil, c.errorf("login", err)
		}
	}
	if err := c.findSystem(ctx); err != nil {
		_ = c.Close()
		return nil, c.errorf("find system", err)
	}
	return c, nil
}

// Address is the BMC's base URL, as the client uses it.
func (c *Client) Address() string { return c.base }

// Close logs out of the Redfish session (nothing to do with basic auth).
func (c *Client) Close() error {
	c.mu.Lock()
	sess := c.session
	c.session, c.closed = nil, true
	c.mu.Unlock()
	defer c.http.CloseIdleConnections()
	if sess == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	api, err := gofish.ConnectContext(ctx, gofish.ClientConfig{Endpoint: c.base, HTTPClient: c.http, Session: sess})
	if err != nil {
		return c.errorf("logout", bmcError(err))
	}
	if err := bmcError(api.Service.DeleteSession(sess.ID)); err != nil &&
		!errors.Is(err, ErrAuth) && !errors.Is(err, ErrNotFound) {
		return c.errorf("logout", err)
	}
	return nil
}

// login opens a Redfish session. A BMC without a session service (404,
// 405, 501) gets basic auth instead.
func (c *Client) login(ctx context.Context) error {
	api, err := gofish.ConnectContext(ctx, gofish.ClientConfig{
		Endpoint: c.base, HTTPClient: c.http,
		Username: c.ep.Username, Password: c.ep.Password,
	})
	if err != nil {
		var re *common.Error
		if errors.As(err, &re) {
			switch re.HTTPReturnedStatusCode {
			case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
				c.mu.Lock()
				c.basic = true
				c.mu.Unlock()
				return nil
			}
		}
		return bmcError(err)
	}
	sess, err := api.GetSession()
	if err != nil || sess.Token == "" {
		return fmt.Errorf("session created without a token: %w", ErrBMC)
	}
	c.mu.Lock()
	c.session = sess
	c.mu.Unlock()
	return nil
}

// api returns a gofish client bound to ctx with the current credentials.
// gofish keeps its context in the client, so each call gets its own.
func (c *Client) api(ctx context.Context) (*gofish.APIClient, error) {
	cfg := gofish.ClientConfig{Endpoint: c.base, HTTPClient: c.http}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return nil, fmt.Errorf("client is closed: %w", ErrInvalid)
	case c.basic:
		cfg.Username, cfg.Password, cfg.BasicAuth = c.ep.Username, c.ep.Password, true
	case c.session != nil:
		s := *c.session
		cfg.Session = &s
	default:
		c.mu.Unlock()
		return nil, fmt.Errorf("not logged in: %w", ErrAuth)
	}
	c.mu.Unlock()
	api, err := gofish.ConnectContext(ctx, cfg)
	return api, bmcError(err)
}

// do runs op with a gofish client; when a session has expired (401) it
// logs in again and retries once.
func (c *Client) do(ctx context.Context, op func(api *gofish.APIClient) error) error {
	for attempt := 0; ; attempt++ {
		api, err := c.api(ctx)
		if err != nil {
			return err
		}
		err = bmcError(op(api))
		c.mu.Lock()
		retry := errors.Is(err, ErrAuth) && !c.basic && c.session != nil && attempt == 0
		c.mu.Unlock()
		if !retry {
			return err
		}
		if lerr := c.login(ctx); lerr != nil {
			return lerr
		}
	}
}

// errorf names the endpoint and the operation in an error.
func (c *Client) errorf(op string, err error) error {
	return fmt.Errorf("bmc %s: %s: %w", c.base, op, err)
}

// findSystem picks the managed ComputerSystem.
func (c *Client) findSystem(ctx context.Context) error {
	return c.do(ctx, func(api *gofish.APIClient) error {
		systems, err := api.Service.Systems()
		if err != nil {
			return err
		}
		if len(systems) == 0 {
			return fmt.Errorf("the bmc lists no systems: %w", ErrNotFound)
		}
		sort.Slice(systems, func(i, j int) bool { return systems[i].ID < systems[j].ID })
		chosen := systems[0]
		if want := c.ep.SystemID; want != "" {
			chosen = nil
			var ids []string
			for _, s := range systems {
				ids = append(ids, s.ID)
				if s.ID == want || lastSegment(s.ODataID) == want {
					chosen = s
				}
			}
			if chosen == nil {
				return fmt.Errorf("system %q (have %s): %w", want, strings.Join(ids, ", "), ErrNotFound)
			}
		}
		c.systemURI, c.systemID = chosen.ODataID, chosen.ID
		return nil
	})
}

// computerSystem fetches the managed system.
func (c *Client) computerSystem(api *gofish.APIClient) (*gfredfish.ComputerSystem, error) {
	return gfredfish.GetComputerSystem(api, c.systemURI)
}

// lastSegment is the last element of a URI path.
func lastSegment(uri string) string {
	uri = strings.TrimSuffix(uri, "/")
	return uri[strings.LastIndex(uri, "/")+1:]
}
