package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/ferryvpn/ferry/authn"
	"github.com/ferryvpn/ferry/cluster"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
)

// maxRestoreBytes bounds an uploaded backup.
const maxRestoreBytes = 8 << 30

func (h *handler) mountCluster(mux *http.ServeMux) {
	route(mux, http.MethodGet, wire.PathClusterStatus, h.admin(h.clusterStatus))
	route(mux, http.MethodDelete, wire.PathClusterMember, h.admin(h.removeMember))
	route(mux, http.MethodGet, wire.PathClusterBackup, h.admin(h.backup))
	route(mux, http.MethodPost, wire.PathClusterRestore, h.admin(h.restore))
}

func (h *handler) clusterStatus(w http.ResponseWriter, r *http.Request, s authn.Session) {
	st := h.node.Status()
	out := wire.ClusterStatus{Node: st.NodeID, State: st.State, LeaderID: st.LeaderID, Term: st.Term,
		CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, JournalSeq: st.JournalSeq, Ready: true, Members: []wire.ClusterMember{}}
	if err := h.node.Ready(); err != nil {
		out.Ready, out.NotReady = false, err.Error()
	}
	for _, m := range st.Members {
		out.Members = append(out.Members, wire.ClusterMember{ID: m.ID, Addr: m.Addr, Voter: m.Voter, Leader: m.Leader, Healthy: m.Healthy})
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) removeMember(w http.ResponseWriter, r *http.Request, s authn.Session) {
	id := r.PathValue("id")
	if !h.isMember(id) {
		writeError(w, http.StatusNotFound, "no member "+strconv.Quote(id))
		return
	}
	if err := h.node.RemoveServer(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("removed cluster member", "id", id, "by", s.Identity.UserID)
	writeJSON(w, http.StatusOK, struct{}{})
}

// backup streams a consistent copy of the answering node's state.
func (h *handler) backup(w http.ResponseWriter, r *http.Request, s authn.Session) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="ferry-backup.snap"`)
	idx, err := h.node.Backup(w)
	if err != nil {
		h.log.Error("backup failed", "err", err)
		return
	}
	h.log.Info("backup taken", "index", idx, "by", s.Identity.UserID)
}

// restore replaces the whole cluster's state with an uploaded backup. It
// must reach the leader; a damaged backup changes nothing.
func (h *handler) restore(w http.ResponseWriter, r *http.Request, s authn.Session) {
	if !h.node.IsLeader() {
		lid, _ := h.node.Leader()
		writeError(w, http.StatusConflict, "restore must be sent to the leader; this node is not it (leader: "+strconv.Quote(lid)+")")
		return
	}
	body := http.MaxBytesReader(w, r.Body, maxRestoreBytes)
	if err := h.node.Restore(r.Context(), body); err != nil {
		if errors.Is(err, cluster.ErrInvalid) {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		h.fail(w, r, err)
		return
	}
	h.log.Warn("cluster state restored from a backup", "by", s.Identity.UserID)
	writeJSON(w, http.StatusOK, struct{}{})
}
