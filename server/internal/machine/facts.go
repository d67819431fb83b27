package machine

import (
	"strings"
)

// placeholderUUIDs are UUIDs that firmware vendors ship on many boards.
var placeholderUUIDs = map[string]bool{
	"03000200-0400-0500-0006-000700080009": true,
	"00020003-0004-0005-0006-000700080009": true,
	"12345678-1234-5678-90ab-cddeefaabbcc": true,
	"4c4c4544-0000-2010-8020-80c04f202020": true,
}

// ValidUUID reports whether s is a DMI product UUID that can identify a
// machine: 32 hex digits (with or without the usual dashes), not all the
// same digit (all zeros, all f's, ...), and not a known vendor placeholder
// such as 03000200-0400-0500-0006-000700080009. Strings like "Not Settable"
// or "Not Present" fail the format check.
func ValidUUID(s string) bool {
	u := normalUUID(s)
	if u == "" || placeholderUUIDs[u] {
		return false
	}
	digits := strings.ReplaceAll(u, "-", "")
	return strings.Count(digits, digits[:1]) != len(digits)
}

// normalUUID returns s lowercased in 8-4-4-4-12 form, or "" if s is not a UUID.
func normalUUID(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	digits := strings.ReplaceAll(s, "-", "")
	if len(digits) != 32 {
		return ""
	}
	if strings.Contains(s, "-") && len(s) != 36 {
		return ""
	}
	for _, c := range digits {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return digits[0:8] + "-" + digits[8:12] + "-" + digits[12:16] + "-" + digits[16:20] + "-" + digits[20:32]
}

// placeholderSerials are serial numbers that firmware ships unfilled.
var placeholderSerials = map[string]bool{
	"none": true, "null": true, "n/a": true, "na": true, "unknown": true, "invalid": true,
	"not specified": true, "not available": true, "not applicable": true,
	"not settable": true, "not present": true, "default string": true,
	"to be filled by o.e.m.": true, "to be filled by oem": true, "o.e.m.": true, "oem": true,
	"system serial number": true, "chassis serial number": true,
	"base board serial number": true, "serial number": true, "sn": true,
	"0123456789": true, "123456789": true, "1234567890": true,
}

// ValidSerial reports whether s is a serial number that can identify a
// machine: not empty, not a known placeholder ("To Be Filled By O.E.M.",
// "Default string", "0123456789", ...), and not one character repeated
// ("00000000", "XXXXXXXX").
func ValidSerial(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" || placeholderSerials[strings.ToLower(s)] {
		return false
	}
	return strings.Count(s, s[:1]) != len(s)
}

// normalMAC lowercases a MAC and uses colons; it rejects empty, all-zero
// and broadcast addresses.
func normalMAC(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(strings.ReplaceAll(s, "-", ":")))
	switch strings.ReplaceAll(s, ":", "") {
	case "", "000000000000", "ffffffffffff":
		return "", false
	}
	return s, true
}
