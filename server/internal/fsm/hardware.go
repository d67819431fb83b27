package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"underlay.dev/pkg/netconf"
	"underlay.dev/pkg/raidconf"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/catalog"
	"underlay.dev/server/internal/classify"
	"underlay.dev/server/internal/ipam"
	"underlay.dev/server/internal/plan"
	"underlay.dev/server/internal/store"
)

// BIOSSpec is the resolved spec of a bios step.
type BIOSSpec struct {
	Settings map[string]string `json:"settings"`
}

// hardware returns the resolvers of a role's hardware profile, with
// static addresses reserved in the IPAM of tx.
func (f *FSM) hardware(tx *store.Tx) plan.Hardware {
	return plan.Hardware{
		BIOS: func(settings map[string]string) (string, []string, error) {
			b, err := json.Marshal(BIOSSpec{Settings: settings})
			if err != nil {
				return "", nil, err
			}
			var lines []string
			for _, k := range slices.Sorted(maps.Keys(settings)) {
				lines = append(lines, fmt.Sprintf("set %s = %s (through the BMC, then reset)", k, settings[k]))
			}
			return string(b), lines, nil
		},
		RAID: func(raidJSON string, m *underlayv1.Machine, inv *underlayv1.Inventory, role string) (string, []string, error) {
			raidJSON, err := renderHardware("raid", raidJSON, m, inv, role)
			if err != nil {
				return "", nil, err
			}
			cfg, err := raidconf.Parse([]byte(raidJSON))
			if err != nil {
				return "", nil, err
			}
			res, err := raidconf.Resolve(cfg, inv)
			if err != nil {
				return "", nil, err
			}
			b, err := json.Marshal(res)
			if err != nil {
				return "", nil, err
			}
			return string(b), res.Summary(), nil
		},
		Network: func(networkJSON string, m *underlayv1.Machine, inv *underlayv1.Inventory, role string) (string, []string, error) {
			networkJSON, err := renderHardware("network", networkJSON, m, inv, role)
			if err != nil {
				return "", nil, err
			}
			d, err := netconf.Parse([]byte(networkJSON))
			if err != nil {
				return "", nil, err
			}
			if err := netconf.Validate(d, inv.GetNics()); err != nil {
				return "", nil, err
			}
			res, err := netconf.Resolve(d, inv.GetNics(), func(subnet, key string) (string, string, []string, error) {
				return reserveStatic(tx, subnet, key, m.GetId())
			})
			if err != nil {
				return "", nil, err
			}
			b, err := json.Marshal(res)
			if err != nil {
				return "", nil, err
			}
			return string(b), res.Summary(), nil
		},
	}
}

// reserveStatic gives key (a MAC) a static address in subnet: its
// reservation if it has one, else the lowest address outside the dynamic
// range that is not the gateway, reserved or leased. The reservation is
// written in the same transaction as the plan.
func reserveStatic(tx *store.Tx, subnet, key, machineID string) (string, string, []string, error) {
	sn, p, err := pool(tx, subnet)
	if err != nil {
		return "", "", nil, fmt.Errorf("ipam subnet %q: %w", subnet, err)
	}
	mac, err := ipam.NormalizeMAC(key)
	if err != nil {
		return "", "", nil, fmt.Errorf("ipam key %q: %v: %w", key, err, store.ErrInvalid)
	}
	dns := append([]string(nil), sn.GetDns()...)
	gw := sn.GetGateway()
	cidr := func(ip string) string { return fmt.Sprintf("%s/%d", ip, p.Prefix.Bits()) }
	if r := tx.Reservation(subnet, mac); r != nil {
		return cidr(r.GetIp()), gw, dns, nil
	}
	now := tx.Now().AsTime()
	network := p.Prefix.Addr()
	for a := network.Next(); p.Prefix.Contains(a.Next()); a = a.Next() {
		if p.InRange(a) || a == p.Gateway {
			continue
		}
		if !free(tx, subnet, a.String(), mac, now) {
			continue
		}
		if err := tx.PutReservation(&underlayv1.Reservation{Subnet: subnet, Mac: mac, Ip: a.String(), Hostname: machineID}); err != nil {
			return "", "", nil, err
		}
		return cidr(a.String()), gw, dns, nil
	}
	return "", "", nil, fmt.Errorf("ipam subnet %s (%s) has no free static address outside its dynamic range %s-%s: %w",
		subnet, p.Prefix, p.Start, p.End, store.ErrPrecondition)
}

// renderHardware renders the templates of a hardware document with the
// machine's facts (.machine.macs, .machine.labels, ...), so that one role
// fits many machines: `"ethernet_mac_address": "{{ index .machine.macs 0 }}"`.
// Params are not available here (secrets cannot be opened in the FSM).
func renderHardware(kind, doc string, m *underlayv1.Machine, inv *underlayv1.Inventory, role string) (string, error) {
	if !strings.Contains(doc, "{{") {
		return doc, nil
	}
	return catalog.Render(kind+" profile", doc, nil, plan.Facts(m, inv, role))
}

// checkHardwareTemplate checks at apply time that a hardware document's
// templates parse and refer only to known machine facts.
func checkHardwareTemplate(kind string, doc []byte) error {
	if !bytes.Contains(doc, []byte("{{")) {
		return nil
	}
	params, facts, err := catalog.TemplateRefs(string(doc))
	if err != nil {
		return fmt.Errorf("%s profile: %w", kind, err)
	}
	if len(params) > 0 {
		return fmt.Errorf("%s profile refers to params (%s); hardware profiles are resolved when the role is assigned and can use machine facts (.machine.*) only: %w",
			kind, strings.Join(params, ", "), store.ErrInvalid)
	}
	known := map[string]bool{}
	for _, f := range catalog.MachineFacts() {
		known[f] = true
	}
	for _, f := range facts {
		if !known[f] {
			return fmt.Errorf("%s profile refers to unknown machine fact %q (known: %s): %w", kind, f, strings.Join(catalog.MachineFacts(), ", "), store.ErrInvalid)
		}
	}
	return nil
}

// catalogOptions are the validation hooks for what the catalog does not
// parse itself: the hardware formats and rule expressions.
func catalogOptions() catalog.Options {
	return catalog.Options{
		ValidateRAID: func(b []byte) error {
			if err := checkHardwareTemplate("raid", b); err != nil {
				return err
			}
			_, err := raidconf.Parse(b)
			return err
		},
		ValidateNetwork: func(b []byte) error {
			if err := checkHardwareTemplate("network", b); err != nil {
				return err
			}
			_, err := netconf.Parse(b)
			return err
		},
		ValidateMatch: func(expr string) error {
			_, err := classify.Parse(expr)
			return err
		},
	}
}
