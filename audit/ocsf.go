package audit

import (
	"encoding/json"
	"net/netip"
	"strings"
)

// OCSFVersion is the OCSF schema version OCSF output declares.
const OCSFVersion = "1.3.0"

// OCSF formats entries as Open Cybersecurity Schema Framework events, one
// JSON object per entry:
//
//   - auth.login, auth.mfa, auth.logout: Authentication (3002), Logon or
//     Logoff; MFA sets is_mfa.
//   - auth.lockout, user.disable, user.enable, user.mfa_reset: Account
//     Change (3001), Lock, Disable, Enable or MFA Factor Disable.
//   - flow.accept, flow.deny: Network Activity (4001), Traffic or Refuse.
//   - session.start, session.end: Tunnel Activity (4014), Open or Close.
//   - peer.*, profile.*, admin.*, cluster.* and anything else: API Activity
//     (6003), Create, Update, Delete or Other by the action's verb.
//   - checkpoints and undecodable records: Base Event (0), Other.
//
// Every object carries the base event's required attributes and the
// class's required attributes; the chain fields (seq, hash, prev_hash), the
// policy version and the event details travel in "unmapped", the event ID
// in metadata.uid and the sequence number in metadata.sequence.
type OCSF struct{}

// Name returns "ocsf".
func (OCSF) Name() string { return "ocsf" }

type obj = map[string]any

// Append appends e as one OCSF JSON object.
func (OCSF) Append(dst []byte, e *Entry) ([]byte, error) {
	b, err := json.Marshal(ocsfEvent(e))
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// ocsfClass is the class and activity an event maps to.
type ocsfClass struct {
	uid, category      int
	name, categoryName string
	activity           int
	activityName       string
}

var (
	catIAM     = [2]any{3, "Identity & Access Management"}
	catNetwork = [2]any{4, "Network Activity"}
	catApp     = [2]any{6, "Application Activity"}
)

func classify(ev *Event) ocsfClass {
	mk := func(uid int, name string, cat [2]any, act int, actName string) ocsfClass {
		return ocsfClass{uid: uid, name: name, category: cat[0].(int), categoryName: cat[1].(string), activity: act, activityName: actName}
	}
	switch ev.Type {
	case TypeLogin, TypeMFA:
		return mk(3002, "Authentication", catIAM, 1, "Logon")
	case TypeLogout:
		return mk(3002, "Authentication", catIAM, 2, "Logoff")
	case TypeLockout:
		return mk(3001, "Account Change", catIAM, 9, "Lock")
	case TypeUserDisable:
		return mk(3001, "Account Change", catIAM, 5, "Disable")
	case TypeUserEnable:
		return mk(3001, "Account Change", catIAM, 2, "Enable")
	case TypeMFAReset:
		return mk(3001, "Account Change", catIAM, 11, "MFA Factor Disable")
	case TypeFlowAccept:
		return mk(4001, "Network Activity", catNetwork, 6, "Traffic")
	case TypeFlowDeny:
		return mk(4001, "Network Activity", catNetwork, 5, "Refuse")
	case TypeSessionStart:
		return mk(4014, "Tunnel Activity", catNetwork, 1, "Open")
	case TypeSessionEnd:
		return mk(4014, "Tunnel Activity", catNetwork, 2, "Close")
	}
	// The action names the verb when there is one (profile.change with
	// action profile.delete is a delete), the type otherwise.
	verb := ev.FullType()
	if ev.Action != "" {
		verb = ev.Action
	}
	switch {
	case ev.Type == TypePeerIssue || hasVerb(verb, "create", "add", "issue", "join"):
		return mk(6003, "API Activity", catApp, 1, "Create")
	case ev.Type == TypePeerRevoke || hasVerb(verb, "delete", "remove", "revoke", "kill"):
		return mk(6003, "API Activity", catApp, 4, "Delete")
	case ev.Type == TypeProfileChange || hasVerb(verb, "update", "edit", "apply", "change", "set", "reset", "disable", "enable", "put"):
		return mk(6003, "API Activity", catApp, 3, "Update")
	case hasVerb(verb, "read", "list", "show", "get", "export", "backup"):
		return mk(6003, "API Activity", catApp, 2, "Read")
	}
	return mk(6003, "API Activity", catApp, 99, "Other")
}

// hasVerb reports whether the last dot-separated word of name is a verb.
func hasVerb(name string, verbs ...string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	for _, v := range verbs {
		if last == v {
			return true
		}
	}
	return false
}

func ocsfEvent(e *Entry) obj {
	chain := obj{"seq": e.Seq, "hash": e.Hash.String(), "prev_hash": e.PrevHash.String()}
	meta := obj{
		"version":  OCSFVersion,
		"product":  obj{"name": "ferry", "vendor_name": "Ferry"},
		"sequence": e.Seq,
		"log_name": "audit",
	}
	ev := e.Event
	if ev == nil {
		o := obj{
			"class_uid": 0, "class_name": "Base Event", "category_uid": 0, "category_name": "Uncategorized",
			"activity_id": 99, "activity_name": "Other", "type_uid": 99, "type_name": "Base Event: Other",
			"severity_id": 1, "severity": "Informational", "metadata": meta, "unmapped": chain,
		}
		if c := e.Checkpoint; c != nil {
			o["time"] = c.Time.UnixMilli()
			o["message"] = "audit checkpoint"
			meta["event_code"] = "audit.checkpoint"
			chain["checkpoint"] = c
		} else {
			o["time"] = int64(0)
			o["message"] = "audit record"
			chain["data"] = e.Data
		}
		return o
	}
	c := classify(ev)
	sevID, sev := 1, "Informational"
	switch syslogSeverity(ev) {
	case 2:
		sevID, sev = 4, "High"
	case 4:
		sevID, sev = 3, "Medium"
	case 5:
		sevID, sev = 2, "Low"
	}
	statusID, status := 1, "Success"
	if ev.Outcome == Failure {
		statusID, status = 2, "Failure"
	}
	meta["uid"] = ev.ID
	meta["event_code"] = ev.FullType()
	if ev.Action != "" {
		chain["action"] = ev.Action
	}
	if ev.PolicyVersion != 0 {
		chain["policy_version"] = ev.PolicyVersion
	}
	if len(ev.Details) > 0 {
		chain["details"] = ev.Details
	}
	chain["node"] = ev.Node
	o := obj{
		"class_uid": c.uid, "class_name": c.name, "category_uid": c.category, "category_name": c.categoryName,
		"activity_id": c.activity, "activity_name": c.activityName,
		"type_uid": c.uid*100 + c.activity, "type_name": c.name + ": " + c.activityName,
		"severity_id": sevID, "severity": sev, "status_id": statusID, "status": status,
		"time": ev.Time.UnixMilli(), "message": ev.FullType() + " " + string(ev.Outcome),
		"metadata": meta, "unmapped": chain,
	}
	if ev.Reason != "" {
		o["status_detail"] = ev.Reason
	}
	actor := obj{}
	if u := ocsfUser(ev.Actor.UserID, ev.Actor.Email, ev.Actor.Groups); u != nil {
		actor["user"] = u
	}
	if ev.Actor.Session != "" {
		actor["session"] = obj{"uid": ev.Actor.Session}
	}
	if len(actor) > 0 {
		o["actor"] = actor
	}
	src := ocsfEndpoint(ev.Source.Addr, ev.Source.Port)
	if src != nil {
		o["src_endpoint"] = src
	}
	if ev.Source.UserAgent != "" {
		o["http_request"] = obj{"user_agent": ev.Source.UserAgent}
	}
	nodeEP := obj{"hostname": ev.Node}
	if ev.Node == "" {
		nodeEP = obj{"name": "ferry"}
	}
	switch c.uid {
	case 3002:
		o["user"] = userOrUnknown(ocsfUser(ev.Actor.UserID, ev.Actor.Email, ev.Actor.Groups))
		o["service"] = obj{"name": "ferry"}
		o["dst_endpoint"] = nodeEP
		o["is_mfa"] = ev.Type == TypeMFA
		o["is_remote"] = true
		if ev.Actor.Session != "" {
			o["session"] = obj{"uid": ev.Actor.Session}
		}
	case 3001:
		target := ocsfUser(ev.Target.User, "", nil)
		if target == nil {
			target = ocsfUser(ev.Actor.UserID, ev.Actor.Email, ev.Actor.Groups)
		}
		o["user"] = userOrUnknown(target)
	case 4001:
		if src == nil {
			o["src_endpoint"] = obj{"name": "unknown"}
		}
		dst := ocsfEndpoint(ev.Target.DstAddr, ev.Target.DstPort)
		if dst == nil {
			dst = obj{"name": "unknown"}
		}
		o["dst_endpoint"] = dst
		o["connection_info"] = obj{"protocol_name": strings.ToLower(ev.Target.Protocol), "direction_id": 2, "direction": "Outbound"}
		o["traffic"] = obj{"bytes_in": ev.BytesIn, "bytes_out": ev.BytesOut, "bytes": ev.BytesIn + ev.BytesOut}
		if len(ev.Flows) > 0 {
			// A batched flow event: totals here, each tuple in unmapped.
			n, in, out := ev.flowTotals()
			o["count"] = n
			o["traffic"] = obj{"bytes_in": in, "bytes_out": out, "bytes": in + out}
			if len(ev.Flows) == 1 {
				f := &ev.Flows[0]
				if ep := ocsfEndpoint(f.Dst, f.Port); ep != nil {
					o["dst_endpoint"] = ep
				}
				o["connection_info"] = obj{"protocol_name": strings.ToLower(f.Proto), "direction_id": 2, "direction": "Outbound"}
			}
			chain["flows"] = ev.Flows
		}
	case 4014:
		o["user"] = userOrUnknown(ocsfUser(ev.Actor.UserID, ev.Actor.Email, ev.Actor.Groups))
		o["dst_endpoint"] = nodeEP
		if ev.Actor.Session != "" {
			o["session"] = obj{"uid": ev.Actor.Session}
		}
		o["protocol_name"] = "wireguard"
		o["tunnel_type_id"] = 0
		if ev.Target.Peer != "" {
			o["tunnel_interface"] = obj{"name": ev.Target.Peer}
		}
		o["traffic"] = obj{"bytes_in": ev.BytesIn, "bytes_out": ev.BytesOut, "bytes": ev.BytesIn + ev.BytesOut}
		if ev.Duration > 0 {
			o["duration"] = ev.Duration.Milliseconds()
		}
	case 6003:
		if len(actor) == 0 {
			actor["app_name"] = "ferry"
			o["actor"] = actor
		}
		op := ev.FullType()
		o["api"] = obj{"operation": op, "service": obj{"name": "ferry"}}
		if src == nil {
			o["src_endpoint"] = obj{"name": "unknown"}
		}
		var res []obj
		for _, r := range []struct{ typ, name string }{
			{"peer", ev.Target.Peer}, {"profile", ev.Target.Profile}, {"user", ev.Target.User},
			{"device", ev.Target.Device}, {"node", ev.Target.Node},
		} {
			if r.name != "" {
				res = append(res, obj{"type": r.typ, "name": r.name})
			}
		}
		if len(res) > 0 {
			o["resources"] = res
		}
	}
	return o
}

func ocsfUser(uid, email string, groups []string) obj {
	if uid == "" && email == "" {
		return nil
	}
	u := obj{}
	if uid != "" {
		u["uid"] = uid
	}
	if email != "" {
		u["email_addr"] = email
		u["name"] = email
	} else {
		u["name"] = uid
	}
	if len(groups) > 0 {
		gs := make([]obj, len(groups))
		for i, g := range groups {
			gs[i] = obj{"name": g}
		}
		u["groups"] = gs
	}
	return u
}

func userOrUnknown(u obj) obj {
	if u == nil {
		return obj{"name": "unknown"}
	}
	return u
}

func ocsfEndpoint(addr string, port int) obj {
	if addr == "" && port == 0 {
		return nil
	}
	ep := obj{}
	if ip, err := netip.ParseAddr(addr); err == nil {
		ep["ip"] = ip.String()
	} else if addr != "" {
		ep["hostname"] = addr
	} else {
		ep["name"] = "unknown"
	}
	if port > 0 {
		ep["port"] = port
	}
	return ep
}
