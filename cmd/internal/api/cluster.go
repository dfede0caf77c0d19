package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/ferryvpn/ferry/audit"
	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// maxRestoreBytes bounds an uploaded backup.
const maxRestoreBytes = 8 << 30

// transferTimeout bounds a backup download or a restore upload. The API
// server's read and write timeouts suit small JSON bodies; a backup of
// several gigabytes needs longer, and only an administrator gets it.
const transferTimeout = time.Hour

// Actions of the cluster operations' audit events (type cluster).
const (
	actionAdd     = "member.add"
	actionRemove  = "member.remove"
	actionBackup  = "backup"
	actionRestore = "restore"
)

func (h *handler) mountCluster(mux *http.ServeMux) {
	route(mux, http.MethodGet, wire.PathClusterStatus, h.admin(h.clusterStatus))
	route(mux, http.MethodDelete, wire.PathClusterMember, h.admin(h.removeMember))
	route(mux, http.MethodGet, wire.PathClusterBackup, h.admin(h.backup))
	route(mux, http.MethodPost, wire.PathClusterRestore, h.admin(h.restore))
	route(mux, http.MethodPost, wire.PathClusterJoinTokens, h.admin(h.joinToken))
	route(mux, http.MethodPost, wire.PathMembers, h.admin(h.members))
}

func (h *handler) clusterStatus(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	st := h.node.Status()
	out := wire.ClusterStatus{Node: st.NodeID, State: st.State, LeaderID: st.LeaderID, Term: st.Term,
		CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, JournalSeq: st.JournalSeq, Ready: true, Members: []wire.ClusterMember{}}
	if err := h.node.Ready(); err != nil {
		out.Ready, out.NotReady = false, err.Error()
	}
	expiry, err := h.admit.CertExpiry(r.Context())
	if err != nil {
		return err
	}
	for _, m := range st.Members {
		cm := wire.ClusterMember{ID: m.ID, Addr: m.Addr, Voter: m.Voter, Leader: m.Leader, Healthy: m.Healthy}
		if t, ok := expiry[m.ID]; ok {
			cm.CertNotAfter = &t
		}
		out.Members = append(out.Members, cm)
	}
	if h.audit != nil && h.audit.Sinks != nil {
		if sinks, err := h.audit.Sinks.Store.List(r.Context()); err == nil {
			n := len(sinks)
			out.AuditNetworkSinks = &n
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *handler) removeMember(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	id := r.PathValue("id")
	if !h.isMember(id) {
		return errorf(http.StatusNotFound, "no member %q", id)
	}
	err := h.node.RemoveServer(r.Context(), id)
	h.recordOp(r, s, actionRemove, audit.Target{Node: id}, err, nil)
	if err != nil {
		return err
	}
	h.log.Info("removed cluster member", "id", id, "by", s.Identity.UserID)
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// backup streams a consistent copy of the answering node's state.
func (h *handler) backup(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	h.extendDeadlines(w)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="ferry-backup.snap"`)
	idx, err := h.node.Backup(w)
	h.recordOp(r, s, actionBackup, audit.Target{Node: h.node.ID()}, err, map[string]string{"index": strconv.FormatUint(idx, 10)})
	if err != nil {
		// The body has begun: the client sees a cut stream, the log why.
		h.log.Error("backup failed", "err", err)
		return nil
	}
	h.log.Info("backup taken", "index", idx, "by", s.Identity.UserID)
	return nil
}

// restore replaces the whole cluster's state with an uploaded backup. Any
// node takes it: a follower streams it to the leader over the cluster's
// mutual TLS (cluster.Node.Restore), so it works behind a load balancer. A
// damaged backup changes nothing.
func (h *handler) restore(w http.ResponseWriter, r *http.Request, s authn.Session) error {
	h.extendDeadlines(w)
	body := http.MaxBytesReader(w, r.Body, maxRestoreBytes)
	err := h.node.Restore(r.Context(), body)
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		err = errors.New("backup is larger than " + strconv.FormatInt(maxErr.Limit, 10) + " bytes")
		h.recordOp(r, s, actionRestore, audit.Target{}, err, nil)
		return errorf(http.StatusRequestEntityTooLarge, "%s", err.Error())
	}
	// A restored journal is the backup's: the record of a success goes
	// into it, the record of a failure into the state that stays.
	h.recordOp(r, s, actionRestore, audit.Target{}, err, nil)
	if errors.Is(err, cluster.ErrNotLeader) {
		// The backup is read once, so a restore is not retried.
		return errorf(http.StatusServiceUnavailable, "the leader changed during the restore; check the cluster's state and try again")
	}
	if err != nil {
		return err
	}
	h.log.Warn("cluster state restored from a backup", "by", s.Identity.UserID)
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// recordOp records a cluster operation by s: success when opErr is nil,
// else failure with opErr as the reason. It returns the recorder's error;
// without a recorder the operation is logged only, and nil is returned.
func (h *handler) recordOp(r *http.Request, s authn.Session, action string, target audit.Target, opErr error, details map[string]string) error {
	if h.audit == nil || h.audit.Recorder == nil {
		return nil
	}
	e := audit.Event{
		Type: audit.TypeCluster, Action: action, Actor: actor(s), Source: auditSource(r),
		Target: target, Outcome: audit.Success, Details: details,
	}
	if opErr != nil {
		e.Outcome, e.Reason = audit.Failure, opErr.Error()
	}
	// The request's context may be gone (a client that hung up on a
	// restore); the record must not be.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), recordTimeout)
	defer cancel()
	err := h.audit.Recorder.Record(ctx, e)
	if err != nil {
		h.log.Error("recording cluster operation failed", "action", action, "err", err)
	}
	return err
}

// recordTimeout bounds the wait for an operation's audit record.
const recordTimeout = 30 * time.Second

// extendDeadlines lets a backup or restore run past the server's timeouts,
// up to transferTimeout.
func (h *handler) extendDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	dl := time.Now().Add(transferTimeout) // the connection's clock, not the injected one
	// Errors mean the connection has no deadlines to extend.
	_ = rc.SetReadDeadline(dl)
	_ = rc.SetWriteDeadline(dl)
}

// isMember reports whether id is in the cluster configuration.
func (h *handler) isMember(id string) bool {
	for _, m := range h.node.Status().Members {
		if m.ID == id {
			return true
		}
	}
	return false
}
