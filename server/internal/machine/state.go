package machine

import (
	"errors"
	"fmt"
	"strings"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

var (
	// ErrIllegalTransition is wrapped by every error Transition returns.
	ErrIllegalTransition = errors.New("illegal state transition")
	// ErrUnknownState is returned by ParseState for a name that is not a state.
	ErrUnknownState = errors.New("unknown machine state")
)

// The lifecycle, as enforced by Transition:
//
//	discovered  -> ready
//	ready       -> configuring, redeploying
//	configuring -> deploying, failed
//	deploying   -> active, failed
//	active      -> redeploying
//	redeploying -> configuring, failed   (a redeploy wipes, then configures again)
//	failed      -> ready, configuring, redeploying   (retry)
//	any state but retired -> retired
//
// Nothing leaves retired, a state never transitions to itself, and
// MACHINE_STATE_UNSPECIFIED is neither a source nor a target.
var transitions = map[underlayv1.MachineState][]underlayv1.MachineState{
	underlayv1.MachineState_MACHINE_STATE_DISCOVERED: {
		underlayv1.MachineState_MACHINE_STATE_READY,
	},
	underlayv1.MachineState_MACHINE_STATE_READY: {
		underlayv1.MachineState_MACHINE_STATE_CONFIGURING,
		underlayv1.MachineState_MACHINE_STATE_REDEPLOYING,
	},
	underlayv1.MachineState_MACHINE_STATE_CONFIGURING: {
		underlayv1.MachineState_MACHINE_STATE_DEPLOYING,
		underlayv1.MachineState_MACHINE_STATE_FAILED,
	},
	underlayv1.MachineState_MACHINE_STATE_DEPLOYING: {
		underlayv1.MachineState_MACHINE_STATE_ACTIVE,
		underlayv1.MachineState_MACHINE_STATE_FAILED,
	},
	underlayv1.MachineState_MACHINE_STATE_ACTIVE: {
		underlayv1.MachineState_MACHINE_STATE_REDEPLOYING,
	},
	underlayv1.MachineState_MACHINE_STATE_REDEPLOYING: {
		underlayv1.MachineState_MACHINE_STATE_CONFIGURING,
		underlayv1.MachineState_MACHINE_STATE_FAILED,
	},
	underlayv1.MachineState_MACHINE_STATE_FAILED: {
		underlayv1.MachineState_MACHINE_STATE_READY,
		underlayv1.MachineState_MACHINE_STATE_CONFIGURING,
		underlayv1.MachineState_MACHINE_STATE_REDEPLOYING,
	},
}

// TransitionError reports a transition the lifecycle does not allow. It
// matches ErrIllegalTransition with errors.Is.
type TransitionError struct {
	From, To underlayv1.MachineState
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("machine state: cannot go from %s to %s", StateName(e.From), StateName(e.To))
}

// Unwrap returns ErrIllegalTransition.
func (e *TransitionError) Unwrap() error { return ErrIllegalTransition }

// Transition returns nil when a machine may go from state from to state to,
// and otherwise a *TransitionError that names both states and wraps
// ErrIllegalTransition.
func Transition(from, to underlayv1.MachineState) error {
	if known(from) && known(to) && from != to {
		if to == underlayv1.MachineState_MACHINE_STATE_RETIRED {
			return nil
		}
		for _, next := range transitions[from] {
			if next == to {
				return nil
			}
		}
	}
	return &TransitionError{From: from, To: to}
}

func known(s underlayv1.MachineState) bool {
	return s > underlayv1.MachineState_MACHINE_STATE_UNSPECIFIED &&
		s <= underlayv1.MachineState_MACHINE_STATE_RETIRED
}

// States returns every real lifecycle state, in lifecycle order.
func States() []underlayv1.MachineState {
	return []underlayv1.MachineState{
		underlayv1.MachineState_MACHINE_STATE_DISCOVERED,
		underlayv1.MachineState_MACHINE_STATE_READY,
		underlayv1.MachineState_MACHINE_STATE_CONFIGURING,
		underlayv1.MachineState_MACHINE_STATE_DEPLOYING,
		underlayv1.MachineState_MACHINE_STATE_ACTIVE,
		underlayv1.MachineState_MACHINE_STATE_FAILED,
		underlayv1.MachineState_MACHINE_STATE_REDEPLOYING,
		underlayv1.MachineState_MACHINE_STATE_RETIRED,
	}
}

const statePrefix = "MACHINE_STATE_"

// StateName returns the short lowercase name of a state ("discovered",
// "ready", ...); MACHINE_STATE_UNSPECIFIED is "unspecified" and a value
// outside the enum is "state(N)".
func StateName(s underlayv1.MachineState) string {
	name, ok := underlayv1.MachineState_name[int32(s)]
	if !ok {
		return fmt.Sprintf("state(%d)", int32(s))
	}
	return strings.ToLower(strings.TrimPrefix(name, statePrefix))
}

// ParseState is the inverse of StateName. It is case-insensitive, also
// accepts the full enum name ("MACHINE_STATE_READY"), and rejects
// "unspecified" with ErrUnknownState.
func ParseState(name string) (underlayv1.MachineState, error) {
	key := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(key, statePrefix) {
		key = statePrefix + key
	}
	v, ok := underlayv1.MachineState_value[key]
	if !ok || !known(underlayv1.MachineState(v)) {
		return underlayv1.MachineState_MACHINE_STATE_UNSPECIFIED, fmt.Errorf("parse state %q: %w", name, ErrUnknownState)
	}
	return underlayv1.MachineState(v), nil
}

// Path returns the shortest sequence of legal transitions that takes a
// machine from from to to (not including from), and false when there is
// none. From a state to itself the path is empty.
func Path(from, to underlayv1.MachineState) ([]underlayv1.MachineState, bool) {
	if from == to {
		return nil, known(from)
	}
	prev := map[underlayv1.MachineState]underlayv1.MachineState{from: from}
	queue := []underlayv1.MachineState{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, next := range States() {
			if _, seen := prev[next]; seen || Transition(cur, next) != nil {
				continue
			}
			prev[next] = cur
			if next == to {
				var path []underlayv1.MachineState
				for s := to; s != from; s = prev[s] {
					path = append([]underlayv1.MachineState{s}, path...)
				}
				return path, true
			}
			queue = append(queue, next)
		}
	}
	return nil, false
}
