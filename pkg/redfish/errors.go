package redfish

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/stmcginnis/gofish/common"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrAuth is returned when the BMC refuses the credentials (HTTP 401).
	ErrAuth = errors.New("bmc refused the credentials")
	// ErrUnknownAttribute is returned when a BIOS attribute does not exist
	// on the machine.
	ErrUnknownAttribute = errors.New("unknown bios attribute")
	// ErrInvalid is returned for bad input: an endpoint, a value of the
	// wrong type, an unsupported boot device or power action.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound is returned when the BMC has no such resource (a system
	// ID, a BIOS resource).
	ErrNotFound = errors.New("not found on the bmc")
	// ErrRejected is returned when the BMC rejected a request (HTTP 4xx
	// other than 401 and 404); the error text carries its messages.
	ErrRejected = errors.New("bmc rejected the request")
	// ErrBMC is returned for a BMC-side failure (HTTP 5xx) or an answer
	// the client cannot read.
	ErrBMC = errors.New("bmc failed")
)

// bmcError turns a gofish error into one carrying a sentinel and the
// Redfish messages (@Message.ExtendedInfo) instead of the raw body.
func bmcError(err error) error {
	if err == nil {
		return nil
	}
	var ce *common.CollectionError
	if errors.As(err, &ce) {
		for _, f := range ce.Failures {
			return bmcError(f)
		}
	}
	var re *common.Error
	if !errors.As(err, &re) || re.HTTPReturnedStatusCode == 0 {
		return err
	}
	msg := redfishMessages(re)
	status := re.HTTPReturnedStatusCode
	var sentinel error
	switch {
	case status == http.StatusUnauthorized:
		sentinel = ErrAuth
	case status == http.StatusNotFound:
		sentinel = ErrNotFound
	case status >= 400 && status < 500:
		sentinel = ErrRejected
	default:
		sentinel = ErrBMC
	}
	if hasMessage(re, "PropertyUnknown") {
		return fmt.Errorf("http %d: %s: %w: %w", status, msg, ErrUnknownAttribute, sentinel)
	}
	return fmt.Errorf("http %d: %s: %w", status, msg, sentinel)
}

// redfishMessages renders a Redfish error: the extended messages when
// there are any, else the main message, else the status text.
func redfishMessages(re *common.Error) string {
	var parts []string
	for _, m := range re.ExtendedInfos {
		text := m.Message
		if text == "" {
			text = strings.Join(m.MessageArgs, ", ")
		}
		if m.MessageID != "" {
			text = m.MessageID + ": " + text
		}
		if text != "" {
			parts = append(parts, text)
		}
	}
	if len(parts) == 0 && re.Message != "" && !strings.HasPrefix(strings.TrimSpace(re.Message), "{") {
		parts = append(parts, truncate(strings.TrimSpace(re.Message), 200))
	}
	if len(parts) == 0 && re.Code != "" {
		parts = append(parts, re.Code)
	}
	if len(parts) == 0 {
		parts = append(parts, strings.ToLower(http.StatusText(re.HTTPReturnedStatusCode)))
	}
	return strings.Join(parts, "; ")
}

// hasMessage reports whether the error carries a message whose ID ends
// in id (registries version their IDs: Base.1.8.PropertyUnknown).
func hasMessage(re *common.Error, id string) bool {
	for _, m := range re.ExtendedInfos {
		if strings.HasSuffix(m.MessageID, "."+id) || m.MessageID == id {
			return true
		}
	}
	return strings.HasSuffix(re.Code, "."+id)
}

// truncate shortens s to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
