package redfish

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Base message registry version of the messages the BMC sends.
const base = "Base.1.8."

// message is a Redfish Message (@Message.ExtendedInfo entry).
type message struct {
	ODataType   string   `json:"@odata.type"`
	MessageID   string   `json:"MessageId"`
	Message     string   `json:"Message"`
	MessageArgs []string `json:"MessageArgs"`
	Severity    string   `json:"Severity"`
	Resolution  string   `json:"Resolution"`
}

func msg(id, text, resolution string, args ...string) message {
	if args == nil {
		args = []string{}
	}
	sev := "Warning"
	if id == "Success" {
		sev = "OK"
	}
	return message{ODataType: "#Message.v1_1_1.Message", MessageID: base + id, Message: text,
		MessageArgs: args, Severity: sev, Resolution: resolution}
}

// writeError sends a Redfish error response carrying msgs.
func writeError(w http.ResponseWriter, status int, msgs ...message) {
	code, text := base+"GeneralError", "A general error has occurred. See ExtendedInfo for more information."
	if len(msgs) == 1 {
		code, text = msgs[0].MessageID, msgs[0].Message
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": code, "message": text, "@Message.ExtendedInfo": msgs,
	}})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, msg("ResourceMissingAtURI",
		fmt.Sprintf("The resource at the URI %s was not found.", r.URL.Path),
		"Place a valid resource at the URI or correct the URI and resubmit the request.", r.URL.Path))
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow ...string) {
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, msg("OperationNotAllowed",
		fmt.Sprintf("The %s method is not allowed on %s.", r.Method, r.URL.Path),
		"Use one of the methods "+strings.Join(allow, ", ")+"."))
}

func unauthorized(w http.ResponseWriter, text string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="Redfish"`)
	writeError(w, http.StatusUnauthorized, msg("NoValidSession", text,
		"Establish a session with valid credentials or send valid basic authentication credentials."))
}

// readBody decodes a JSON object request body, keeping numbers exact.
func readBody(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, msg("MalformedJSON", "The request body could not be read.",
			"Resubmit the request."))
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var body map[string]any
	if err := dec.Decode(&body); err != nil || body == nil {
		writeError(w, http.StatusBadRequest, msg("MalformedJSON",
			"The request body submitted was malformed JSON and could not be parsed by the receiving service.",
			"Ensure that the request body is valid JSON and resubmit the request."))
		return nil, false
	}
	return body, true
}

// session is a Redfish session.
type session struct {
	id, token, user string
	created, used   time.Time
}

func (s *session) resource() map[string]any {
	return map[string]any{
		"@odata.id":   "/redfish/v1/SessionService/Sessions/" + s.id,
		"@odata.type": "#Session.v1_3_0.Session",
		"Id":          s.id, "Name": "User Session " + s.id,
		"UserName":    s.user,
		"CreatedTime": s.created.UTC().Format(time.RFC3339),
	}
}

// ServeHTTP routes a Redfish request.
func (b *BMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	b.serve(rec, r)
	b.log.Debug("redfish request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "remote", r.RemoteAddr)
}

func (b *BMC) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/redfish":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, http.MethodGet)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"v1": "/redfish/v1/"})
		return
	case path == "/redfish/v1":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, http.MethodGet)
			return
		}
		writeJSON(w, http.StatusOK, b.serviceRoot())
		return
	case path == "/redfish/v1/SessionService/Sessions" && r.Method == http.MethodPost:
		b.login(w, r)
		return
	case !strings.HasPrefix(path, "/redfish/v1/"):
		notFound(w, r)
		return
	}
	if !b.authenticate(w, r) {
		return
	}
	seg := strings.Split(strings.TrimPrefix(path, "/redfish/v1/"), "/")
	switch seg[0] {
	case "SessionService":
		b.serveSessions(w, r, seg[1:])
	case "Systems":
		b.serveSystems(w, r, seg[1:])
	case "Managers":
		b.serveManagers(w, r, seg[1:])
	case "Chassis":
		b.serveChassis(w, r, seg[1:])
	default:
		notFound(w, r)
	}
}

func (b *BMC) serviceRoot() map[string]any {
	return map[string]any{
		"@odata.id":      "/redfish/v1",
		"@odata.type":    "#ServiceRoot.v1_11_0.ServiceRoot",
		"Id":             "RootService",
		"Name":           "Root Service",
		"RedfishVersion": "1.11.0",
		"UUID":           b.uuid,
		"Vendor":         "Underlay",
		"Product":        "Underlay Redfish simulator",
		"Systems":        link("/redfish/v1/Systems"),
		"Managers":       link("/redfish/v1/Managers"),
		"Chassis":        link("/redfish/v1/Chassis"),
		"SessionService": link("/redfish/v1/SessionService"),
		"Links":          map[string]any{"Sessions": link("/redfish/v1/SessionService/Sessions")},
	}
}

func link(uri string) map[string]string { return map[string]string{"@odata.id": uri} }

func links(uris ...string) []map[string]string {
	out := make([]map[string]string, 0, len(uris))
	for _, u := range uris {
		out = append(out, link(u))
	}
	return out
}

func collection(uri, typ, name string, members []string) map[string]any {
	return map[string]any{
		"@odata.id": uri, "@odata.type": "#" + typ + "." + typ, "Name": name,
		"Members": links(members...), "Members@odata.count": len(members),
	}
}

// credentialsOK compares credentials in constant time.
func (b *BMC) credentialsOK(user, pass string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(b.cfg.Username))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(b.cfg.Password))
	return u&p == 1
}

func (b *BMC) authFailed(r *http.Request, user, how string) {
	b.mu.Lock()
	b.authFailures++
	n := b.authFailures
	b.mu.Unlock()
	b.log.Warn("redfish login refused", "user", user, "auth", how, "remote", r.RemoteAddr, "failures", n)
}

// authenticate accepts a valid X-Auth-Token or basic credentials.
func (b *BMC) authenticate(w http.ResponseWriter, r *http.Request) bool {
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		now := time.Now()
		b.mu.Lock()
		s := b.sessions[tok]
		if s != nil && now.Sub(s.used) > b.cfg.SessionTimeout {
			delete(b.sessions, tok)
			s = nil
		}
		if s != nil {
			s.used = now
		}
		b.mu.Unlock()
		if s == nil {
			unauthorized(w, "The session token is not valid or the session has expired.")
			return false
		}
		return true
	}
	if user, pass, ok := r.BasicAuth(); ok {
		if b.credentialsOK(user, pass) {
			return true
		}
		b.authFailed(r, user, "basic")
		unauthorized(w, "The user name or password is not valid.")
		return false
	}
	unauthorized(w, "There is no valid session established with the implementation.")
	return false
}

// login creates a session: POST {UserName, Password}.
func (b *BMC) login(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	user, _ := body["UserName"].(string)
	pass, _ := body["Password"].(string)
	for _, p := range []string{"UserName", "Password"} {
		if _, ok := body[p].(string); !ok {
			writeError(w, http.StatusBadRequest, msg("PropertyMissing",
				fmt.Sprintf("The property %s is a required property and must be included in the request.", p),
				"Ensure that the property is in the request body and has a valid value.", p))
			return
		}
	}
	if !b.credentialsOK(user, pass) {
		b.authFailed(r, user, "session")
		unauthorized(w, "The user name or password is not valid.")
		return
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	now := time.Now()
	b.mu.Lock()
	b.nextSession++
	s := &session{id: strconv.Itoa(b.nextSession), token: hex.EncodeToString(tok), user: user, created: now, used: now}
	b.sessions[s.token] = s
	b.mu.Unlock()
	b.log.Info("redfish session opened", "user", user, "session", s.id, "remote", r.RemoteAddr)
	w.Header().Set("X-Auth-Token", s.token)
	w.Header().Set("Location", "/redfish/v1/SessionService/Sessions/"+s.id)
	writeJSON(w, http.StatusCreated, s.resource())
}

func (b *BMC) serveSessions(w http.ResponseWriter, r *http.Request, seg []string) {
	switch {
	case len(seg) == 0:
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, http.MethodGet)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.id": "/redfish/v1/SessionService", "@odata.type": "#SessionService.v1_1_8.SessionService",
			"Id": "SessionService", "Name": "Session Service", "ServiceEnabled": true,
			"SessionTimeout": int(b.cfg.SessionTimeout / time.Second),
			"Sessions":       link("/redfish/v1/SessionService/Sessions"),
		})
	case len(seg) == 1 && seg[0] == "Sessions":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, http.MethodGet, http.MethodPost)
			return
		}
		b.mu.Lock()
		var ids []string
		for _, s := range b.sessions {
			ids = append(ids, "/redfish/v1/SessionService/Sessions/"+s.id)
		}
		b.mu.Unlock()
		writeJSON(w, http.StatusOK, collection("/redfish/v1/SessionService/Sessions", "SessionCollection", "Sessions", sortStrings(ids)))
	case len(seg) == 2 && seg[0] == "Sessions":
		b.mu.Lock()
		var found *session
		for _, s := range b.sessions {
			if s.id == seg[1] {
				found = s
			}
		}
		if found != nil && r.Method == http.MethodDelete {
			delete(b.sessions, found.token)
		}
		b.mu.Unlock()
		switch {
		case found == nil:
			notFound(w, r)
		case r.Method == http.MethodGet:
			writeJSON(w, http.StatusOK, found.resource())
		case r.Method == http.MethodDelete:
			b.log.Info("redfish session closed", "user", found.user, "session", found.id)
			w.WriteHeader(http.StatusNoContent)
		default:
			methodNotAllowed(w, r, http.MethodGet, http.MethodDelete)
		}
	default:
		notFound(w, r)
	}
}

// statusRecorder remembers the status of a response for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
