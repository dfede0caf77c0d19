package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/client"
	"github.com/ferryvpn/ferry/cmd/internal/wire"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newProfileCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Manage access profiles",
		Long: `An access profile says what its people may reach through the tunnel (rules of
destination network, protocol and ports), how their tunnel is set up (DNS,
split or full tunnel), how long a sign-in lasts and how many devices each may
hold, and who gets it (IdP groups and users).

Manage profiles one by one with create, edit and delete, or declaratively with
apply, which makes the cluster's profiles match a YAML file exactly.`,
		Example: `  ferryctl profile create engineering --rule "10.0.0.0/16 tcp 22,443,8000-8080" --group engineering
  ferryctl profile edit engineering --max-session 8h
  ferryctl profile apply -f profiles.yaml --dry-run`,
	}
	cmd.AddCommand(
		newProfileCreateCmd(g),
		newProfileEditCmd(g),
		newProfileShowCmd(g),
		newProfileListCmd(g),
		newProfileDeleteCmd(g),
		newProfileApplyCmd(g),
	)
	return cmd
}

// ruleHelp documents the --rule syntax.
const ruleHelp = `A rule is "CIDR [PROTOCOL [PORTS]]": a destination network, a protocol (tcp,
udp, icmp or any; default any) and for tcp and udp a comma-separated list of
ports and ranges (default every port), e.g. "10.0.0.0/16 tcp 22,443,8000-8080".`

// profileFlags are the settings create and edit take.
type profileFlags struct {
	rules, addRules, removeRules []string
	dns, search                  []string
	groups, users                []string
	addGroups, removeGroups      []string
	addUsers, removeUsers        []string
	fullTunnel                   bool
	maxSession                   string
	maxDevices                   int
	description                  string
}

func (pf *profileFlags) register(f *pflag.FlagSet, edit bool) {
	f.StringArrayVar(&pf.rules, "rule", nil, "access rule, \"CIDR [tcp|udp|icmp|any [PORTS]]\" (repeatable)")
	f.StringSliceVar(&pf.dns, "dns", nil, "DNS server address for the tunnel (repeatable)")
	f.StringSliceVar(&pf.search, "search", nil, "DNS search domain (repeatable)")
	f.BoolVar(&pf.fullTunnel, "full-tunnel", false, "send all of the client's traffic through the tunnel")
	f.StringVar(&pf.maxSession, "max-session", "", "how long a sign-in lasts, e.g. 12h (server default 12h)")
	f.IntVar(&pf.maxDevices, "max-devices", 0, "devices each person may hold (server default 5)")
	f.StringSliceVar(&pf.groups, "group", nil, "IdP group that gets the profile (repeatable)")
	f.StringSliceVar(&pf.users, "user", nil, "user ID or email that gets the profile (repeatable)")
	f.StringVar(&pf.description, "description", "", "what the profile is for")
	if edit {
		f.StringArrayVar(&pf.addRules, "add-rule", nil, "add an access rule (repeatable)")
		f.StringArrayVar(&pf.removeRules, "remove-rule", nil, "remove an access rule, written as it was added (repeatable)")
		f.StringSliceVar(&pf.addGroups, "add-group", nil, "add an IdP group (repeatable)")
		f.StringSliceVar(&pf.removeGroups, "remove-group", nil, "remove an IdP group (repeatable)")
		f.StringSliceVar(&pf.addUsers, "add-user", nil, "add a user (repeatable)")
		f.StringSliceVar(&pf.removeUsers, "remove-user", nil, "remove a user (repeatable)")
	}
}

// apply sets the fields of p whose flags were given on the command line,
// and reports whether there were any.
func (pf *profileFlags) apply(f *pflag.FlagSet, p *wire.Profile) (bool, error) {
	changed := false
	set := func(name string) bool {
		if f.Changed(name) {
			changed = true
			return true
		}
		return false
	}
	if set("rule") {
		rules, err := parseRules("--rule", pf.rules)
		if err != nil {
			return false, err
		}
		p.Rules = rules
	}
	if set("remove-rule") {
		remove, err := parseRules("--remove-rule", pf.removeRules)
		if err != nil {
			return false, err
		}
		for _, r := range remove {
			i := slices.IndexFunc(p.Rules, func(x wire.Rule) bool { return sameRule(x, r) })
			if i < 0 {
				return false, fmt.Errorf("--remove-rule %q: profile %s has no such rule (see ferryctl profile show %s)", ruleString(r), p.Name, p.Name)
			}
			p.Rules = slices.Delete(p.Rules, i, i+1)
		}
	}
	if set("add-rule") {
		add, err := parseRules("--add-rule", pf.addRules)
		if err != nil {
			return false, err
		}
		for _, r := range add {
			if !slices.ContainsFunc(p.Rules, func(x wire.Rule) bool { return sameRule(x, r) }) {
				p.Rules = append(p.Rules, r)
			}
		}
	}
	if set("dns") {
		for _, a := range pf.dns {
			if _, err := netip.ParseAddr(a); err != nil {
				return false, fmt.Errorf("--dns %q: not an IP address", a)
			}
		}
		p.DNS = pf.dns
	}
	if set("search") {
		p.SearchDomains = pf.search
	}
	if set("full-tunnel") {
		p.FullTunnel = pf.fullTunnel
	}
	if set("max-session") {
		d, err := time.ParseDuration(pf.maxSession)
		if err != nil || d <= 0 {
			return false, fmt.Errorf("--max-session %q: want a duration like 12h or 90m", pf.maxSession)
		}
		p.MaxSession = pf.maxSession
	}
	if set("max-devices") {
		if pf.maxDevices < 1 {
			return false, fmt.Errorf("--max-devices %d: want 1 or more", pf.maxDevices)
		}
		p.MaxDevices = pf.maxDevices
	}
	if set("description") {
		p.Description = pf.description
	}
	if set("group") {
		p.Groups = pf.groups
	}
	if set("remove-group") {
		p.Groups = slices.DeleteFunc(p.Groups, func(x string) bool { return slices.Contains(pf.removeGroups, x) })
	}
	if set("add-group") {
		p.Groups = appendNew(p.Groups, pf.addGroups)
	}
	if set("user") {
		p.Users = pf.users
	}
	if set("remove-user") {
		p.Users = slices.DeleteFunc(p.Users, func(x string) bool { return slices.Contains(pf.removeUsers, x) })
	}
	if set("add-user") {
		p.Users = appendNew(p.Users, pf.addUsers)
	}
	return changed, nil
}

func appendNew(to, add []string) []string {
	for _, a := range add {
		if !slices.Contains(to, a) {
			to = append(to, a)
		}
	}
	return to
}

// parseRules parses the values of a --rule flag.
func parseRules(flag string, values []string) ([]wire.Rule, error) {
	rules := make([]wire.Rule, 0, len(values))
	for _, v := range values {
		r, err := parseRule(v)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", flag, v, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// parseRule parses "CIDR [PROTOCOL [PORTS]]". The server validates the
// rest (protocols, port ranges, overlap with the client pool).
func parseRule(s string) (wire.Rule, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return wire.Rule{}, fmt.Errorf("empty rule: want \"CIDR [PROTOCOL [PORTS]]\"")
	}
	p, err := netip.ParsePrefix(f[0])
	if err != nil {
		return wire.Rule{}, fmt.Errorf("%q is not a CIDR like 10.0.0.0/16", f[0])
	}
	r := wire.Rule{CIDR: p.Masked().String(), Protocol: "any"}
	if len(f) > 1 {
		r.Protocol = strings.ToLower(f[1])
	}
	for _, part := range f[min(2, len(f)):] {
		for _, port := range strings.Split(part, ",") {
			if port = strings.TrimSpace(port); port != "" {
				r.Ports = append(r.Ports, port)
			}
		}
	}
	if len(r.Ports) > 0 && r.Protocol != "tcp" && r.Protocol != "udp" {
		return wire.Rule{}, fmt.Errorf("ports only apply to tcp and udp, not %s", r.Protocol)
	}
	return r, nil
}

// ruleString writes a rule the way --rule takes it.
func ruleString(r wire.Rule) string {
	s := r.CIDR + " " + r.Protocol
	if len(r.Ports) > 0 {
		s += " " + strings.Join(r.Ports, ",")
	}
	return s
}

// sameRule reports whether two rules mean the same.
func sameRule(a, b wire.Rule) bool {
	norm := func(r wire.Rule) string {
		if p, err := netip.ParsePrefix(r.CIDR); err == nil {
			r.CIDR = p.Masked().String()
		}
		r.Protocol = strings.ToLower(r.Protocol)
		if r.Protocol == "" {
			r.Protocol = "any"
		}
		return ruleString(r)
	}
	return norm(a) == norm(b)
}

func newProfileCreateCmd(g *globals) *cobra.Command {
	var pf profileFlags
	cmd := &cobra.Command{
		Use:   "create NAME --rule RULE [--rule RULE...] [flags]",
		Short: "Create an access profile",
		Long: `create adds a profile. Give at least one --rule, and the IdP groups (--group)
or users (--user) who get it. Settings left out take the server's defaults:
split tunnel, 12h sessions, 5 devices per person.

` + ruleHelp,
		Example: `  ferryctl profile create engineering \
      --rule "10.0.0.0/16 tcp 22,443,8000-8080" --rule "10.1.0.0/16 icmp" \
      --dns 10.0.0.2 --search corp.example.com --group engineering
  ferryctl profile create contractors --rule "10.2.3.4/32 tcp 443" \
      --user bob@example.com --max-session 4h --max-devices 1 --description "Contractor portal only"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := wire.Profile{Name: args[0]}
			if _, err := pf.apply(cmd.Flags(), &p); err != nil {
				return err
			}
			if len(p.Rules) == 0 {
				return fmt.Errorf("profile %s: give at least one --rule", p.Name)
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			out, err := c.CreateProfile(cmd.Context(), p)
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, out)
			}
			fmt.Fprintf(g.con.out, "Created profile %s (version %d).\n", out.Name, out.Version)
			return nil
		},
	}
	pf.register(cmd.Flags(), false)
	return cmd
}

func newProfileEditCmd(g *globals) *cobra.Command {
	var pf profileFlags
	cmd := &cobra.Command{
		Use:   "edit NAME [flags]",
		Short: "Change settings of an access profile",
		Long: `edit changes only the settings whose flags are given and keeps the rest. A list
flag (--rule, --dns, --search, --group, --user) replaces the whole list; give
it an empty value (--dns "") to clear it. --add-rule and --remove-rule, and
their group and user counterparts, change a list in place.

The change is made only if nobody changed the profile since edit read it; if
someone did, edit fails and changes nothing: run it again. Peers issued under
the profile follow the new rules within a second.

` + ruleHelp,
		Example: `  ferryctl profile edit engineering --max-session 8h
  ferryctl profile edit engineering --add-rule "10.3.0.0/16 tcp 5432" --remove-rule "10.1.0.0/16 icmp"
  ferryctl profile edit engineering --dns "" --full-tunnel=false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connectAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			p, err := c.Profile(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			version := p.Version
			changed, err := pf.apply(cmd.Flags(), &p)
			if err != nil {
				return err
			}
			if !changed {
				return fmt.Errorf("nothing to change: give the settings to change (see ferryctl profile edit --help)")
			}
			out, err := c.UpdateProfile(cmd.Context(), p, version)
			if s := client.StatusOf(err); s == http.StatusConflict || s == http.StatusPreconditionFailed {
				return fmt.Errorf("profile %s was changed by someone else since it was read (version %d); nothing was changed: run the edit again", p.Name, version)
			}
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, out)
			}
			fmt.Fprintf(g.con.out, "Updated profile %s (version %d).\n", out.Name, out.Version)
			return nil
		},
	}
	pf.register(cmd.Flags(), true)
	return cmd
}

func newProfileShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "show NAME",
		Short:   "Show an access profile",
		Example: "  ferryctl profile show engineering\n  ferryctl profile show engineering -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connectAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			p, err := c.Profile(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, p)
			}
			var rules []string
			for _, r := range p.Rules {
				rules = append(rules, ruleString(r))
			}
			tunnel := "split"
			if p.FullTunnel {
				tunnel = "full"
			}
			devices := ""
			if p.MaxDevices > 0 {
				devices = strconv.Itoa(p.MaxDevices)
			}
			return writeFields(g.con.out, []field{
				{"Name", []string{p.Name}},
				{"Description", []string{p.Description}},
				{"Version", []string{fmt.Sprintf("%d (updated %s)", p.Version, fmtTime(p.Updated))}},
				{"Rules", rules},
				{"Tunnel", []string{tunnel}},
				{"DNS", p.DNS},
				{"Search domains", p.SearchDomains},
				{"Max session", []string{fmtMaxSession(p.MaxSession)}},
				{"Max devices", []string{devices}},
				{"Groups", p.Groups},
				{"Users", p.Users},
			})
		},
	}
}

func newProfileListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List every access profile",
		Example: "  ferryctl profile list\n  ferryctl profile list -o json | jq -r '.profiles[].name'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connectAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			ps, err := c.Profiles(cmd.Context(), true)
			if err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, wire.ProfileList{Profiles: nonNil(ps)})
			}
			if len(ps) == 0 {
				fmt.Fprintln(g.con.out, "No profiles.")
				return nil
			}
			rows := make([][]string, 0, len(ps))
			for _, p := range ps {
				tunnel := "split"
				if p.FullTunnel {
					tunnel = "full"
				}
				rows = append(rows, []string{p.Name, strconv.FormatUint(p.Version, 10), strconv.Itoa(len(p.Rules)), tunnel,
					fmtMaxSession(p.MaxSession), strconv.Itoa(p.MaxDevices), list(p.Groups), list(p.Users), p.Description})
			}
			return writeTable(g.con.out, []string{"NAME", "VERSION", "RULES", "TUNNEL", "MAX SESSION", "MAX DEVICES", "GROUPS", "USERS", "DESCRIPTION"}, rows)
		},
	}
}

// deleted is the JSON answer of a delete.
type deleted struct {
	Name         string `json:"name"`
	Deleted      bool   `json:"deleted"`
	RevokedPeers int    `json:"revoked_peers"`
}

func newProfileDeleteCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete NAME [--yes]",
		Short: "Delete an access profile and revoke its peers",
		Long: `delete removes a profile and revokes every peer issued under it at once: the
people using it lose their tunnel on every node within a second and must sign
in again under another profile. On a terminal delete asks first; elsewhere
give --yes.`,
		Example: "  ferryctl profile delete contractors\n  ferryctl profile delete contractors --yes",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			c, err := g.connectAdmin(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.Profile(cmd.Context(), name); err != nil {
				return err
			}
			peers, err := c.Peers(cmd.Context(), client.PeerFilter{Profile: name})
			if err != nil {
				return err
			}
			active := 0
			for _, p := range peers {
				if p.Profile == name && p.State == "active" {
					active++
				}
			}
			if !yes {
				q := fmt.Sprintf("Delete profile %s and revoke its %d active peer(s)? [y/N] ", name, active)
				if ok, err := confirm(g.con, q); err != nil {
					return err
				} else if !ok {
					return fmt.Errorf("profile %s not deleted", name)
				}
			}
			if err := c.DeleteProfile(cmd.Context(), name); err != nil {
				return err
			}
			if g.json() {
				return writeJSON(g.con.out, deleted{Name: name, Deleted: true, RevokedPeers: active})
			}
			fmt.Fprintf(g.con.out, "Deleted profile %s and revoked its %d active peer(s).\n", name, active)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	return cmd
}

// confirm asks a yes/no question on a terminal; elsewhere it refuses, so
// that a script never destroys anything without --yes.
func confirm(con console, question string) (bool, error) {
	if !con.interactive {
		return false, fmt.Errorf("not on a terminal: confirm with --yes")
	}
	fmt.Fprint(con.err, question)
	line, err := bufio.NewReader(con.in).ReadString('\n')
	if err != nil && err != io.EOF {
		return false, err
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

func newProfileApplyCmd(g *globals) *cobra.Command {
	var (
		file   string
		dryRun bool
		replay string
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--dry-run [--replay AGE]]",
		Short: "Make the cluster's profiles match a YAML file",
		Long: `apply sends a declarative profile file to the server, which makes the cluster's
profiles match it exactly: it creates the profiles that are new, updates those
that differ and deletes those missing from the file (revoking their peers).
The whole file is checked first; a bad file is rejected whole, naming the line
and the field, and nothing changes. Applying the same file again changes
nothing.

apply prints what it changed, one line per profile ("+" created, "~" updated,
with the fields, "-" deleted), or "no changes". With --dry-run it prints what
it would change and changes nothing. With --dry-run --replay 7d it also replays
the traffic recorded over the last 7 days against the proposed profiles: per
profile, the recorded flows that would become denied and the recorded denials
that would become allowed, by user and destination with counts. Use -f - to
read the file from standard input.

  profiles:
    - name: engineering
      description: Engineers
      rules:
        - {cidr: 10.0.0.0/16, protocol: tcp, ports: [22, 443, 8000-8080]}
        - {cidr: 10.1.0.0/16, protocol: icmp}
      dns: [10.0.0.2]
      search_domains: [corp.example.com]
      max_session: 12h
      max_devices: 5
      groups: [engineering]
      users: [alice@example.com]`,
		Example: `  ferryctl profile apply -f profiles.yaml --dry-run
  ferryctl profile apply -f profiles.yaml --dry-run --replay 7d
  ferryctl profile apply -f profiles.yaml
  git show main:profiles.yaml | ferryctl profile apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if replay != "" && !dryRun {
				return fmt.Errorf("--replay %s: only with --dry-run (replay first, then apply)", replay)
			}
			var since time.Time
			if replay != "" {
				var err error
				if since, err = parseWhen("--replay", replay, time.Now()); err != nil {
					return err
				}
			}
			text, err := readInput(g.con.in, file)
			if err != nil {
				return err
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			defer c.Close()
			res, err := c.ApplyProfiles(cmd.Context(), text, dryRun)
			if err != nil {
				return err
			}
			if replay != "" {
				rep, err := c.ReplayProfiles(cmd.Context(), text, since, time.Time{})
				if err != nil {
					return err
				}
				if g.json() {
					return writeJSON(g.con.out, struct {
						Plan   wire.ApplyResponse  `json:"plan"`
						Replay wire.ReplayResponse `json:"replay"`
					}{res, rep})
				}
				fmt.Fprint(g.con.out, dryRunText(res))
				return writeReplay(g.con.out, replay, rep)
			}
			if g.json() {
				return writeJSON(g.con.out, res)
			}
			if dryRun {
				fmt.Fprint(g.con.out, dryRunText(res))
				return nil
			}
			fmt.Fprint(g.con.out, planText(res))
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the profile file (YAML); - reads standard input")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would change and change nothing")
	cmd.Flags().StringVar(&replay, "replay", "", "with --dry-run: replay the traffic recorded over this age (7d, 24h) or since this time against the proposed profiles")
	cmd.MarkFlagRequired("file")
	return cmd
}

// maxApplyFile bounds the file apply sends; the server refuses larger
// bodies anyway.
const maxApplyFile = wire.MaxBodyBytes

// readInput reads a file, or standard input for "-".
func readInput(stdin io.Reader, path string) (string, error) {
	var r io.Reader
	if path == "-" {
		r = stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("reading the profile file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxApplyFile+1))
	if err != nil {
		return "", fmt.Errorf("reading the profile file: %w", err)
	}
	if len(b) > maxApplyFile {
		return "", fmt.Errorf("profile file %s: larger than the %d bytes the server accepts", path, maxApplyFile)
	}
	return string(b), nil
}

// planText is the server's diff, or one rendered from the plan when the
// server sent none.
func planText(res wire.ApplyResponse) string {
	if res.Diff != "" {
		if !strings.HasSuffix(res.Diff, "\n") {
			return res.Diff + "\n"
		}
		return res.Diff
	}
	if len(res.Create)+len(res.Update)+len(res.Delete) == 0 {
		return "no changes\n"
	}
	var b strings.Builder
	for _, c := range res.Create {
		fmt.Fprintf(&b, "+ profile %s\n", c.Name)
	}
	for _, c := range res.Update {
		fmt.Fprintf(&b, "~ profile %s: %s\n", c.Name, strings.Join(c.Fields, ", "))
	}
	for _, c := range res.Delete {
		fmt.Fprintf(&b, "- profile %s\n", c.Name)
	}
	return b.String()
}

// dryRunText says what apply would do, in words that cannot be mistaken
// for a change made.
func dryRunText(res wire.ApplyResponse) string {
	var b strings.Builder
	b.WriteString("Dry run: nothing was changed.\n")
	if len(res.Create)+len(res.Update)+len(res.Delete) == 0 {
		b.WriteString("Applying this file would change nothing.\n")
		return b.String()
	}
	for _, c := range res.Create {
		fmt.Fprintf(&b, "would create profile %s\n", c.Name)
	}
	for _, c := range res.Update {
		fmt.Fprintf(&b, "would update profile %s: %s\n", c.Name, strings.Join(c.Fields, ", "))
	}
	for _, c := range res.Delete {
		fmt.Fprintf(&b, "would delete profile %s and revoke its devices\n", c.Name)
	}
	b.WriteString("Run again without --dry-run to apply.\n")
	return b.String()
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
