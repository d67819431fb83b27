package inventory

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"underlay.dev/pkg/hwfacts"

	"google.golang.org/protobuf/proto"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

// placeholderUUIDs are DMI product UUIDs that firmware vendors ship on many
// boards at once; they identify nothing.
var placeholderUUIDs = map[string]bool{
	"03000200-0400-0500-0006-000700080009": true,
	"00020003-0004-0005-0006-000700080009": true,
	"12345678-1234-5678-90ab-cddeefaabbcc": true,
	"4c4c4544-0000-2010-8020-80c04f202020": true, // Dell "no service tag"
	"00000000-0000-0000-0000-000000000001": true,
	"01234567-8901-2345-6789-012345678901": true,
	"fefefefe-fefe-fefe-fefe-fefefefefefe": true,
}

// placeholderSerials are DMI serials that firmware leaves unset, lowercased.
var placeholderSerials = map[string]bool{
	"":                         true,
	"0":                        true,
	"00000000":                 true,
	"0123456789":               true,
	"1234567890":               true,
	"123456789":                true,
	"none":                     true,
	"n/a":                      true,
	"na":                       true,
	"null":                     true,
	"unknown":                  true,
	"default string":           true,
	"not specified":            true,
	"not applicable":           true,
	"not available":            true,
	"to be filled by o.e.m.":   true,
	"to be filled by oem":      true,
	"system serial number":     true,
	"chassis serial number":    true,
	"base board serial number": true,
	"serial number":            true,
	"invalid":                  true,
	"empty":                    true,
	"oem":                      true,
	"xxxxxxxxxxxx":             true,
}

// ValidUUID reports whether s is a DMI product UUID that identifies one
// machine: well formed, not all zeros, not all f, and not a known firmware
// placeholder.
func ValidUUID(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != 36 {
		return false
	}
	hexDigits := 0
	var first byte
	allSame := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
		if hexDigits == 0 {
			first = c
		} else if c != first {
			allSame = false
		}
		hexDigits++
	}
	if allSame {
		// 00000000-..., ffffffff-... and every other repeated digit.
		return false
	}
	return !placeholderUUIDs[s]
}

// validSerial reports whether a DMI serial identifies something.
func validSerial(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	if placeholderSerials[s] {
		return false
	}
	// Strings made of one repeated character ("0000000", "........").
	return len(s) < 2 || strings.Trim(s, s[:1]) != ""
}

// normalMAC lowercases a MAC and rejects empty and all-zero ones.
func normalMAC(mac string) string {
	mac = strings.ToLower(strings.TrimSpace(mac))
	if strings.Trim(mac, "0:") == "" {
		return ""
	}
	return mac
}

// Identity derives the machine's identity facts and the proposed machine ID
// from an inventory, following the rules in the package documentation.
func Identity(inv *underlayv1.Inventory) *underlayv1.MachineIdentity {
	id := &underlayv1.MachineIdentity{}
	dmi := inv.GetDmi()
	if ValidUUID(dmi.GetProductUuid()) {
		id.Uuid = strings.ToLower(strings.TrimSpace(dmi.GetProductUuid()))
	}
	for _, s := range []string{dmi.GetProductSerial(), dmi.GetBaseboardSerial(), dmi.GetChassisSerial()} {
		s = strings.TrimSpace(s)
		if validSerial(s) && !slices.Contains(id.Serials, s) {
			id.Serials = append(id.Serials, s)
		}
	}
	for _, n := range inv.GetNics() {
		if !hwfacts.PhysicalNIC(n) {
			continue
		}
		mac := normalMAC(n.GetPermanentMac())
		if mac == "" {
			mac = normalMAC(n.GetMac())
		}
		if mac != "" {
			id.Macs = append(id.Macs, mac)
		}
	}
	slices.Sort(id.Macs)
	id.Macs = slices.Compact(id.Macs)
	id.MachineId = machineID(id)
	return id
}

// machineID computes the machine ID from identity facts.
func machineID(id *underlayv1.MachineIdentity) string {
	h := sha256.New()
	switch {
	case id.GetUuid() != "":
		h.Write([]byte("uuid:" + id.GetUuid()))
	case len(id.GetMacs()) > 0 || len(id.GetSerials()) > 0:
		for _, m := range id.GetMacs() {
			h.Write([]byte("mac:" + m + "\n"))
		}
		for _, s := range id.GetSerials() {
			h.Write([]byte("serial:" + s + "\n"))
		}
	default:
		return ""
	}
	return "m-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// Hash returns a stable hex SHA-256 of the inventory, ignoring the collected
// timestamp, so that two collections of unchanged hardware hash the same.
func Hash(inv *underlayv1.Inventory) string {
	c := proto.Clone(inv).(*underlayv1.Inventory)
	if c == nil {
		c = &underlayv1.Inventory{}
	}
	c.Collected = nil
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		// Marshalling a valid message cannot fail; hash the text form instead
		// of giving up on change detection.
		b = []byte(c.String())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
