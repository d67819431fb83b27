package fsm

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/internal/machine"
	"underlay.dev/server/internal/store"
)

// Event kinds the FSM appends.
const (
	EventClusterBootstrapped = "cluster.bootstrapped"
	EventNodeRegistered      = "node.registered"
	EventNodeDeregistered    = "node.deregistered"
	EventTokenCreated        = "token.created"
	EventTokenRevoked        = "token.revoked"
	EventTokenUsed           = "token.used"
	EventOperatorCreated     = "operator.created"
	EventCertRevoked         = "cert.revoked"
	EventCertIssued          = "cert.issued"
	EventMachineEnrolled     = "machine.enrolled"
	EventMachineReEnrolled   = "machine.re-enrolled"
	EventMachineConflict     = "machine.conflict"
	EventMachineInventory    = "machine.inventory"
	EventMachineLabels       = "machine.labels"
	EventMachineDeleted      = "machine.deleted"
	EventMachineState        = "machine.state"
	EventMachineOnline       = "machine.online"
	EventMachineOffline      = "machine.offline"
)

func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, store.ErrInvalid)...)
}

func bootstrap(tx *store.Tx, b *underlayv1.BootstrapCluster) (string, error) {
	if tx.CA() != nil {
		return "", fmt.Errorf("bootstrap: cluster already bootstrapped: %w", store.ErrPrecondition)
	}
	if b.GetCa().GetClusterId() == "" || b.GetAdmin().GetName() == "" || b.GetNode().GetId() == "" {
		return "", invalid("bootstrap: ca with cluster id, admin and node required")
	}
	clusterID := b.GetCa().GetClusterId()
	if err := tx.SetCluster(clusterID, b.GetCa()); err != nil {
		return "", err
	}
	admin := proto.Clone(b.GetAdmin()).(*underlayv1.Operator)
	if admin.GetRole() == underlayv1.OperatorRole_OPERATOR_ROLE_UNSPECIFIED {
		admin.Role = underlayv1.OperatorRole_OPERATOR_ROLE_ADMIN
	}
	if err := createOperatorTx(tx, admin); err != nil {
		return "", err
	}
	if _, err := registerNode(tx, &underlayv1.RegisterNode{Node: b.GetNode()}); err != nil {
		return "", err
	}
	return clusterID, tx.Event(EventClusterBootstrapped, "",
		fmt.Sprintf("cluster %s bootstrapped on node %s, admin %s", clusterID, b.GetNode().GetId(), admin.GetName()))
}

func registerNode(tx *store.Tx, r *underlayv1.RegisterNode) (string, error) {
	n := r.GetNode()
	if n.GetId() == "" {
		return "", invalid("register node: node id required")
	}
	n = proto.Clone(n).(*underlayv1.NodeInfo)
	if old, err := tx.Node(n.GetId()); err == nil && n.GetJoined() == nil {
		n.Joined = old.GetJoined()
	}
	if n.GetJoined() == nil {
		n.Joined = tx.Now()
	}
	if err := tx.PutNode(n); err != nil {
		return "", err
	}
	return n.GetId(), tx.Event(EventNodeRegistered, "",
		fmt.Sprintf("node %s registered (raft %s, api %s)", n.GetId(), n.GetRaftAddr(), n.GetApiAddr()))
}

func deregisterNode(tx *store.Tx, d *underlayv1.DeregisterNode) (string, error) {
	if err := tx.DeleteNode(d.GetId()); err != nil {
		return "", fmt.Errorf("deregister node: %w", err)
	}
	return d.GetId(), tx.Event(EventNodeDeregistered, "", fmt.Sprintf("node %s deregistered", d.GetId()))
}

func kindName(k underlayv1.TokenKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "TOKEN_KIND_"))
}

func createToken(tx *store.Tx, c *underlayv1.CreateToken) (string, error) {
	t := c.GetToken()
	switch {
	case t.GetId() == "":
		return "", invalid("create token: id required")
	case len(t.GetSecretHash()) == 0:
		return "", invalid("create token %s: secret hash required", t.GetId())
	case t.GetKind() == underlayv1.TokenKind_TOKEN_KIND_UNSPECIFIED:
		return "", invalid("create token %s: kind required", t.GetId())
	case t.GetUsesAllowed() < 0:
		return "", invalid("create token %s: negative uses allowed", t.GetId())
	}
	t = proto.Clone(t).(*underlayv1.Token)
	t.Uses, t.Revoked = 0, false
	if t.GetCreated() == nil {
		t.Created = tx.Now()
	}
	if t.GetCreatedBy() == "" {
		t.CreatedBy = tx.Actor()
	}
	if err := tx.CreateToken(t); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	return t.GetId(), tx.Event(EventTokenCreated, "", fmt.Sprintf("%s token %s created", kindName(t.GetKind()), t.GetId()))
}

func revokeToken(tx *store.Tx, r *underlayv1.RevokeToken) (string, error) {
	t, err := tx.Token(r.GetId())
	if err != nil {
		return "", fmt.Errorf("revoke token: %w", err)
	}
	if t.GetRevoked() {
		return t.GetId(), nil
	}
	t.Revoked = true
	if err := tx.UpdateToken(t); err != nil {
		return "", err
	}
	return t.GetId(), tx.Event(EventTokenRevoked, "", fmt.Sprintf("token %s revoked", t.GetId()))
}

func useTokenCmd(tx *store.Tx, u *underlayv1.UseToken) (string, error) {
	t, err := useToken(tx, u, true)
	if err != nil {
		return "", err
	}
	return t.GetId(), nil
}

// useToken checks and consumes one use of a token. Checks, in order:
// the token exists and the secret hash matches (UNAUTHENTICATED, so that
// a caller without the secret learns nothing more), then it is not revoked,
// not expired at the command's time, has uses left and is of an accepted
// kind (PERMISSION_DENIED). It writes nothing unless every check passes.
func useToken(tx *store.Tx, u *underlayv1.UseToken, consume bool) (*underlayv1.Token, error) {
	id := u.GetId()
	if id == "" {
		return nil, invalid("use token: token id required")
	}
	t, err := tx.Token(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("token %s does not exist: %w", id, ErrUnauthenticated)
	}
	if err != nil {
		return nil, err
	}
	if len(t.GetSecretHash()) == 0 || subtle.ConstantTimeCompare(t.GetSecretHash(), u.GetSecretHash()) != 1 {
		return nil, fmt.Errorf("token %s: wrong secret: %w", id, ErrUnauthenticated)
	}
	if t.GetRevoked() {
		return nil, fmt.Errorf("token %s is revoked: %w", id, ErrPermission)
	}
	if exp := t.GetExpires(); exp != nil && !tx.Now().AsTime().Before(exp.AsTime()) {
		return nil, fmt.Errorf("token %s expired at %s: %w", id, exp.AsTime().UTC().Format(time.RFC3339), ErrPermission)
	}
	if n := t.GetUsesAllowed(); consume && n > 0 && t.GetUses() >= n {
		return nil, fmt.Errorf("token %s has no uses left (%d of %d used): %w", id, t.GetUses(), n, ErrPermission)
	}
	if kinds := u.GetKinds(); len(kinds) > 0 {
		ok := false
		names := make([]string, 0, len(kinds))
		for _, k := range kinds {
			ok = ok || k == t.GetKind()
			names = append(names, kindName(k))
		}
		if !ok {
			return nil, fmt.Errorf("token %s is a %s token; need %s: %w",
				id, kindName(t.GetKind()), strings.Join(names, " or "), ErrPermission)
		}
	}
	if !consume {
		// The caller was already counted against this token (a machine
		// enrolling again with the token it enrolled with).
		return t, nil
	}
	t.Uses++
	if err := tx.UpdateToken(t); err != nil {
		return nil, err
	}
	used := fmt.Sprintf("%d", t.GetUses())
	if t.GetUsesAllowed() > 0 {
		used += fmt.Sprintf(" of %d", t.GetUsesAllowed())
	}
	return t, tx.Event(EventTokenUsed, "", fmt.Sprintf("token %s used (%s)", id, used))
}

func createOperator(tx *store.Tx, c *underlayv1.CreateOperator) (string, error) {
	if err := createOperatorTx(tx, c.GetOperator()); err != nil {
		return "", err
	}
	return c.GetOperator().GetName(), nil
}

func createOperatorTx(tx *store.Tx, o *underlayv1.Operator) error {
	if o.GetName() == "" {
		return invalid("create operator: name required")
	}
	if o.GetRole() == underlayv1.OperatorRole_OPERATOR_ROLE_UNSPECIFIED {
		return invalid("create operator %s: role required", o.GetName())
	}
	o = proto.Clone(o).(*underlayv1.Operator)
	if o.GetCreated() == nil {
		o.Created = tx.Now()
	}
	if o.GetCreatedBy() == "" {
		o.CreatedBy = tx.Actor()
	}
	if err := tx.CreateOperator(o); err != nil {
		return fmt.Errorf("create operator: %w", err)
	}
	role := strings.ToLower(strings.TrimPrefix(o.GetRole().String(), "OPERATOR_ROLE_"))
	return tx.Event(EventOperatorCreated, "", fmt.Sprintf("operator %s created (%s)", o.GetName(), role))
}

// machineOf returns the machine ID of a machine certificate subject, or "".
func machineOf(subject string) string {
	id, ok := strings.CutPrefix(subject, machine.Subject(""))
	if !ok {
		return ""
	}
	return id
}

func revokeCert(tx *store.Tx, c *underlayv1.RevokeCert) (string, error) {
	r := c.GetRevocation()
	if r.GetSerial() == "" {
		return "", invalid("revoke cert: serial required")
	}
	if _, err := revokeTx(tx, r); err != nil {
		return "", err
	}
	return r.GetSerial(), nil
}

// revokeTx records a revocation (defaulting its time and author) and an
// event if it is new.
func revokeTx(tx *store.Tx, r *underlayv1.Revocation) (bool, error) {
	r = proto.Clone(r).(*underlayv1.Revocation)
	if r.GetRevokedAt() == nil {
		r.RevokedAt = tx.Now()
	}
	if r.GetRevokedBy() == "" {
		r.RevokedBy = tx.Actor()
	}
	added, err := tx.Revoke(r)
	if err != nil || !added {
		return false, err
	}
	msg := fmt.Sprintf("certificate %s of %s revoked", r.GetSerial(), r.GetSubject())
	if r.GetReason() != "" {
		msg += ": " + r.GetReason()
	}
	return true, tx.Event(EventCertRevoked, machineOf(r.GetSubject()), msg)
}

func recordIssued(tx *store.Tx, c *underlayv1.RecordIssued) (string, error) {
	i := c.GetIssued()
	if err := tx.PutIssued(i); err != nil {
		return "", err
	}
	return i.GetSerial(), tx.Event(EventCertIssued, machineOf(i.GetSubject()),
		fmt.Sprintf("certificate %s issued to %s", i.GetSerial(), i.GetSubject()))
}
