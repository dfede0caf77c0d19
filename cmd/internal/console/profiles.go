package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/profiles"
	"github.com/ferryvpn/ferry/report"
)

// replayWindow is how far back the profile preview replays recorded
// traffic.
const replayWindow = 7 * 24 * time.Hour

type profilesData struct {
	Profiles []profileRow
}

type profileRow struct {
	Name, Description, Assigned, MaxSession, MaxDevices, Updated, Tunnel string
	Version                                                              uint64
	Rules                                                                []ruleRow
}

type ruleRow struct {
	Dst, Protocol, Ports string
}

// profilesPage shows every profile and its rules as a table.
func (c *Console) profilesPage(w http.ResponseWriter, r *http.Request, k call) {
	ps, err := c.cfg.Profiles.List(r.Context())
	if err != nil {
		c.fail(w, "profile list", err)
		return
	}
	var d profilesData
	for _, p := range ps {
		row := profileRow{Name: p.Name, Description: p.Description, Version: p.Version, MaxSession: "default", MaxDevices: "default", Tunnel: "split"}
		var who []string
		for _, g := range p.Groups {
			who = append(who, "group "+g)
		}
		for _, u := range p.Users {
			who = append(who, "user "+u)
		}
		row.Assigned = strings.Join(who, ", ")
		if row.Assigned == "" {
			row.Assigned = "nobody"
		}
		if p.MaxSession > 0 {
			row.MaxSession = p.MaxSession.String()
		}
		if p.MaxDevices > 0 {
			row.MaxDevices = strconv.Itoa(p.MaxDevices)
		}
		if p.FullTunnel {
			row.Tunnel = "full"
		}
		if !p.Updated.IsZero() {
			row.Updated = p.Updated.UTC().Format("2 Jan 2006 15:04 UTC")
			if p.UpdatedBy != "" {
				row.Updated += " by " + p.UpdatedBy
			}
		}
		for _, rl := range p.Rules {
			rr := ruleRow{Dst: rl.Host, Protocol: rl.Protocol, Ports: "all"}
			if rl.CIDR.IsValid() {
				rr.Dst = rl.CIDR.String()
			}
			if len(rl.Ports) > 0 {
				var ports []string
				for _, pr := range rl.Ports {
					ports = append(ports, pr.String())
				}
				rr.Ports = strings.Join(ports, ", ")
			}
			if rl.Protocol == profiles.ProtoICMP || rl.Protocol == "any" {
				rr.Ports = "—"
			}
			row.Rules = append(row.Rules, rr)
		}
		d.Profiles = append(d.Profiles, row)
	}
	c.render(w, http.StatusOK, "profiles", k, page{Title: "Profiles", Nav: "profiles", D: d})
}

type editData struct {
	File    string
	Lines   []fileLine
	BadLine int
}

type fileLine struct {
	N    int
	Text string
	Bad  bool
}

// editPage shows the profiles as one YAML file to edit.
func (c *Console) editPage(w http.ResponseWriter, r *http.Request, k call) {
	ps, err := c.cfg.Profiles.List(r.Context())
	if err != nil {
		c.fail(w, "profile list", err)
		return
	}
	file, err := profiles.MarshalFile(ps)
	if err != nil {
		c.fail(w, "profile file", err)
		return
	}
	c.render(w, http.StatusOK, "edit", k, page{Title: "Edit profiles", Nav: "profiles", D: editData{File: string(file)}})
}

// showFileError shows the editor again with the file's error at its line.
func (c *Console) showFileError(w http.ResponseWriter, k call, file string, err error) {
	d := editData{File: file}
	var fe *profiles.FileError
	if errors.As(err, &fe) {
		d.BadLine = fe.Line
	}
	for i, l := range strings.Split(file, "\n") {
		if i+1 == d.BadLine || (d.BadLine > 0 && abs(i+1-d.BadLine) <= 3) {
			d.Lines = append(d.Lines, fileLine{N: i + 1, Text: l, Bad: i+1 == d.BadLine})
		}
	}
	msg := err.Error()
	if d.BadLine > 0 {
		msg = "Line " + strconv.Itoa(d.BadLine) + ": " + strings.TrimPrefix(msg, "profiles: invalid: ")
	}
	c.render(w, http.StatusUnprocessableEntity, "edit", k, page{Title: "Edit profiles", Nav: "profiles", Error: msg, D: d})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

type previewData struct {
	File, Token        string
	Plan               []string
	Diff               []diffLine
	Losing             []report.Loss
	Replays            []replayView
	Since, Until       string
	Source             string
	Empty, Ask, Replay bool
}

type replayView struct {
	Profile    string
	WouldDeny  []report.ReplayRow
	WouldAllow []report.ReplayRow
	Folded     uint64
	Nothing    bool
}

// previewToken binds an apply to the preview shown for this exact file
// and plan in this session: Apply is enabled only after a preview.
func previewToken(tok, file, plan string) string {
	sum := sha256.Sum256([]byte(file))
	m := hmac.New(sha256.New, []byte(tok))
	m.Write([]byte("ferry console preview\x00" + hex.EncodeToString(sum[:]) + "\x00" + plan))
	return hex.EncodeToString(m.Sum(nil))
}

// preview parses the posted file and shows what applying it would do:
// the plan and diff, who would lose a profile, and the replay of the
// last 7 days of recorded traffic. It changes nothing.
func (c *Console) preview(w http.ResponseWriter, r *http.Request, k call) {
	if !c.checkForm(w, r, k) {
		return
	}
	file := normalizeNewlines(r.PostForm.Get("file"))
	if r.PostForm.Get("op") == "edit" {
		c.render(w, http.StatusOK, "edit", k, page{Title: "Edit profiles", Nav: "profiles", D: editData{File: file}})
		return
	}
	d, status, err := c.previewOf(r.Context(), k, file)
	if err != nil {
		if errors.Is(err, profiles.ErrInvalid) {
			c.showFileError(w, k, file, err)
			return
		}
		c.fail(w, "profile preview", err)
		return
	}
	d.Ask = !c.fresh(r, k.s)
	c.render(w, status, "preview", k, page{Title: "Preview of the profile change", Nav: "profiles", D: d})
}

func normalizeNewlines(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

func (c *Console) previewOf(ctx context.Context, k call, file string) (previewData, int, error) {
	d := previewData{File: file}
	want, err := profiles.ParseFile([]byte(file), c.cfg.Profiles.Pool())
	if err != nil {
		return d, 0, err
	}
	have, err := c.cfg.Profiles.List(ctx)
	if err != nil {
		return d, 0, err
	}
	cur, err := profiles.MarshalFile(have)
	if err != nil {
		return d, 0, err
	}
	canon, err := profiles.MarshalFile(want)
	if err != nil {
		return d, 0, err
	}
	d.Diff = lineDiff(string(cur), string(canon))
	if c.cfg.Reports == nil {
		plan, err := c.cfg.Profiles.Apply(ctx, want, true, k.actor())
		if err != nil {
			return d, 0, err
		}
		d.Plan, d.Empty = planLines(plan), plan.Empty()
		d.Token = previewToken(k.tok, file, plan.String())
		return d, http.StatusOK, nil
	}
	users, err := c.cfg.Users.List(ctx)
	if err != nil {
		return d, 0, err
	}
	until := c.cfg.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	since := until.Add(-replayWindow)
	pv, err := c.cfg.Reports.PreviewApply(ctx, c.cfg.Profiles, users, want, since, until, k.actor())
	if err != nil {
		return d, 0, err
	}
	d.Replay = true
	d.Plan, d.Empty, d.Losing = planLines(pv.Plan), pv.Plan.Empty(), pv.Losing
	d.Since, d.Until = since.Format("2 Jan 2006 15:04 UTC"), until.Format("2 Jan 2006 15:04 UTC")
	d.Source = sourceText(pv.Source)
	for _, rp := range pv.Replays {
		d.Replays = append(d.Replays, replayView{Profile: rp.Profile, WouldDeny: rp.WouldDeny, WouldAllow: rp.WouldAllow, Folded: rp.Folded,
			Nothing: len(rp.WouldDeny)+len(rp.WouldAllow) == 0})
	}
	d.Token = previewToken(k.tok, file, pv.Plan.String())
	return d, http.StatusOK, nil
}

func planLines(p profiles.Plan) []string {
	return strings.Split(strings.TrimRight(p.String(), "\n"), "\n")
}

// sourceText names the journal range a report comes from.
func sourceText(s report.Source) string {
	t := fmt.Sprintf("audit records %d to %d", s.FromSeq, s.ToSeq)
	if c := s.Checkpoint; c != nil {
		t += fmt.Sprintf(", signed up to record %d (checkpoint key %s)", c.Seq, c.KeyID)
	}
	if s.Unsigned > 0 {
		t += fmt.Sprintf("; %d records after the last signed checkpoint", s.Unsigned)
	}
	return t
}

// apply applies a previewed file: the preview's token must match this
// file and today's plan (else the preview is shown again), the TOTP code
// must be fresh, and then profiles.Store.Apply makes the change as
// ferryctl profile apply does, with its audit events.
func (c *Console) apply(w http.ResponseWriter, r *http.Request, k call) {
	if !c.checkForm(w, r, k) {
		return
	}
	ctx := r.Context()
	file := normalizeNewlines(r.PostForm.Get("file"))
	d, _, err := c.previewOf(ctx, k, file)
	if err != nil {
		if errors.Is(err, profiles.ErrInvalid) {
			c.showFileError(w, k, file, err)
			return
		}
		c.fail(w, "profile preview", err)
		return
	}
	if !hmac.Equal([]byte(r.PostForm.Get("preview")), []byte(d.Token)) {
		d.Ask = !c.fresh(r, k.s)
		c.render(w, http.StatusConflict, "preview", k, page{Title: "Preview of the profile change", Nav: "profiles", D: d,
			Error: "The profiles or the file changed since the preview, so nothing was applied. Check this preview, then apply."})
		return
	}
	if !c.fresh(r, k.s) {
		if problem := c.stepUp(w, r, k); problem != "" {
			d.Ask = true
			c.render(w, http.StatusUnauthorized, "preview", k, page{Title: "Preview of the profile change", Nav: "profiles", Error: problem, D: d})
			return
		}
	}
	want, err := profiles.ParseFile([]byte(file), c.cfg.Profiles.Pool())
	if err == nil {
		_, err = c.cfg.Profiles.Apply(ctx, want, false, k.actor())
	}
	if err != nil {
		c.fail(w, "profile change", err)
		return
	}
	c.render(w, http.StatusOK, "done", k, page{Title: "Done", Nav: "profiles", Notice: "The profiles are applied: " + strings.Join(d.Plan, "; ") + ".",
		D: action{Back: pathProfiles}})
}
