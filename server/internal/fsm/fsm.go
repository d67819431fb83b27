// Package fsm is the Raft finite state machine: it decodes Command log
// entries, applies them to the store and returns an ApplyResult. Applying is
// deterministic: no clock (only Command.time), no I/O, no randomness. Domain
// errors are returned as results; an entry that cannot be decoded is a bug
// and panics.
package fsm

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/store"
)

// messageVersion is the first byte of every encoded Command.
const messageVersion byte = 1

// FSM applies the Raft log to a store.
type FSM struct {
	store *store.Store
	log   *slog.Logger
	// applied is the index of the last command entry this FSM has
	// processed, successful or not (readers wait on it).
	applied atomic.Uint64
}

var _ raft.FSM = (*FSM)(nil)

// New returns an FSM that applies to s.
func New(s *store.Store, log *slog.Logger) *FSM {
	return &FSM{store: s, log: log}
}

// Encode serialises a command for the Raft log: one message-type byte
// (version 1) followed by the deterministic proto encoding.
func Encode(c *underlayv1.Command) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	return append([]byte{messageVersion}, b...), nil
}

// Decode is the inverse of Encode: it parses data into c. Errors wrap
// store.ErrInvalid.
func Decode(data []byte, c *underlayv1.Command) error {
	if len(data) == 0 {
		return fmt.Errorf("decode command: empty entry: %w", store.ErrInvalid)
	}
	if data[0] != messageVersion {
		return fmt.Errorf("decode command: message type %d: %w", data[0], store.ErrInvalid)
	}
	if err := proto.Unmarshal(data[1:], c); err != nil {
		return fmt.Errorf("decode command: %v: %w", err, store.ErrInvalid)
	}
	return nil
}

// Apply applies one log entry. It always returns a non-nil
// *underlayv1.ApplyResult; entries other than raft.LogCommand are ignored
// (an empty result). A domain error is reported in the result's
// error_kind and error_message, and changes nothing.
func (f *FSM) Apply(l *raft.Log) interface{} {
	res := &underlayv1.ApplyResult{Index: l.Index}
	if l.Type != raft.LogCommand {
		return res
	}
	cmd := &underlayv1.Command{}
	if err := Decode(l.Data, cmd); err != nil {
		// Only Encode writes the log: an undecodable entry is a bug, and
		// applying past it would let replicas diverge.
		panic(fmt.Sprintf("fsm: log entry %d: %v", l.Index, err))
	}
	id, err := f.apply(l.Index, cmd)
	f.applied.Store(l.Index)
	res.Id = id
	if err != nil {
		res.ErrorKind = Kind(err)
		res.ErrorMessage = err.Error()
		f.log.Debug("command rejected", "index", l.Index, "error_kind", res.ErrorKind.String(), "error", err)
	}
	return res
}

// errDryRun aborts the transaction of a dry run.
var errDryRun = errors.New("dry run")

// DryRun applies cmd to the current state in a transaction that is always
// thrown away, and returns what Apply would have returned as the result's
// id. The DHCP server uses it to make offers without a Raft write: the
// address is committed only when the client requests it.
func (f *FSM) DryRun(cmd *underlayv1.Command) (string, error) {
	if cmd.GetTime() == nil {
		return "", fmt.Errorf("command without time: %w", store.ErrInvalid)
	}
	var id string
	err := f.store.Update(math.MaxUint64, cmd.GetTime().AsTime(), cmd.GetActor(), func(tx *store.Tx) error {
		var err error
		if id, err = f.applyTx(tx, cmd); err != nil {
			return err
		}
		return errDryRun
	})
	if errors.Is(err, errDryRun) {
		return id, nil
	}
	return "", err
}

// Applied is the index of the last command entry processed here. Raft's
// own applied index runs ahead of it: raft counts an entry as applied when
// it hands it to the FSM, not when the FSM has finished with it.
func (f *FSM) Applied() uint64 { return f.applied.Load() }

func (f *FSM) apply(idx uint64, cmd *underlayv1.Command) (string, error) {
	if cmd.GetCmd() == nil {
		return "", fmt.Errorf("unknown command: %w", ErrUnknownCommand)
	}
	if cmd.GetTime() == nil {
		return "", fmt.Errorf("command without time: %w", store.ErrInvalid)
	}
	now := cmd.GetTime().AsTime()
	var id string
	err := f.store.Update(idx, now, cmd.GetActor(), func(tx *store.Tx) error {
		var err error
		id, err = f.applyTx(tx, cmd)
		return err
	})
	return id, err
}

// applyTx dispatches one command inside a store transaction.
func (f *FSM) applyTx(tx *store.Tx, cmd *underlayv1.Command) (string, error) {
	switch c := cmd.GetCmd().(type) {
	case *underlayv1.Command_Bootstrap:
		return bootstrap(tx, c.Bootstrap)
	case *underlayv1.Command_RegisterNode:
		return registerNode(tx, c.RegisterNode)
	case *underlayv1.Command_DeregisterNode:
		return deregisterNode(tx, c.DeregisterNode)
	case *underlayv1.Command_CreateToken:
		return createToken(tx, c.CreateToken)
	case *underlayv1.Command_RevokeToken:
		return revokeToken(tx, c.RevokeToken)
	case *underlayv1.Command_UseToken:
		return useTokenCmd(tx, c.UseToken)
	case *underlayv1.Command_CreateOperator:
		return createOperator(tx, c.CreateOperator)
	case *underlayv1.Command_RevokeCert:
		return revokeCert(tx, c.RevokeCert)
	case *underlayv1.Command_RecordIssued:
		return recordIssued(tx, c.RecordIssued)
	case *underlayv1.Command_EnrollMachine:
		return enroll(tx, c.EnrollMachine)
	case *underlayv1.Command_UpdateInventory:
		return updateInventory(tx, c.UpdateInventory)
	case *underlayv1.Command_SetMachineLabels:
		return setLabels(tx, c.SetMachineLabels)
	case *underlayv1.Command_DeleteMachine:
		return deleteMachine(tx, c.DeleteMachine)
	case *underlayv1.Command_SetMachineState:
		return setState(tx, c.SetMachineState)
	case *underlayv1.Command_SetPresence:
		return setPresence(tx, c.SetPresence)
	case *underlayv1.Command_PutSubnet:
		return putSubnet(tx, c.PutSubnet)
	case *underlayv1.Command_DeleteSubnet:
		return deleteSubnet(tx, c.DeleteSubnet)
	case *underlayv1.Command_AllocateLease:
		return allocateLease(tx, c.AllocateLease)
	case *underlayv1.Command_ReleaseLease:
		return releaseLease(tx, c.ReleaseLease)
	case *underlayv1.Command_DeclineLease:
		return declineLease(tx, c.DeclineLease)
	case *underlayv1.Command_PutReservation:
		return putReservation(tx, c.PutReservation)
	case *underlayv1.Command_DeleteReservation:
		return deleteReservation(tx, c.DeleteReservation)
	case *underlayv1.Command_SetBootSettings:
		return setBootSettings(tx, c.SetBootSettings)
	case *underlayv1.Command_ApplyDefinitions:
		return applyDefinitions(tx, c.ApplyDefinitions)
	case *underlayv1.Command_DeleteDefinition:
		return deleteDefinition(tx, c.DeleteDefinition)
	case *underlayv1.Command_SetParams:
		return setParams(tx, c.SetParams)
	case *underlayv1.Command_AssignRole:
		return f.assignRole(tx, c.AssignRole)
	case *underlayv1.Command_StartJob:
		return startJob(tx, c.StartJob)
	case *underlayv1.Command_SetStepWaiting:
		return setStepWaiting(tx, c.SetStepWaiting)
	case *underlayv1.Command_JobStarted:
		return jobStarted(tx, c.JobStarted)
	case *underlayv1.Command_AppendJobLog:
		return appendJobLog(tx, c.AppendJobLog)
	case *underlayv1.Command_FinishJob:
		return finishJob(tx, c.FinishJob)
	case *underlayv1.Command_RetryPlan:
		return retryPlan(tx, f, c.RetryPlan)
	case *underlayv1.Command_CancelPlan:
		return cancelPlan(tx, c.CancelPlan)
	case *underlayv1.Command_RedeployMachine:
		return f.redeploy(tx, c.RedeployMachine)
	case *underlayv1.Command_ResumeRole:
		return resumeRole(tx, c.ResumeRole)
	case *underlayv1.Command_ClassifyMachine:
		return f.classify(tx, c.ClassifyMachine)
	default:
		return "", fmt.Errorf("unknown command %T: %w", c, ErrUnknownCommand)
	}
}

// Snapshot captures the state as of the last applied entry; Persist may run
// concurrently with later Applies.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{sn: f.store.Snapshot()}, nil
}

// Restore replaces the store's state with a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.store.Load(rc); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	f.log.Info("state restored from snapshot", "last_index", f.store.LastIndex())
	return nil
}

type snapshot struct {
	sn *store.Snapshot
}

// Persist writes the snapshot to the sink.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.sn.Dump(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return nil
}

// Release does nothing: the snapshot is an immutable view.
func (s *snapshot) Release() {}
