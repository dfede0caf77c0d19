package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferryvpn/ferry/cmd/internal/client"
)

// ServerURL checks a server URL and returns it as https://host[:port],
// lowercase, without a trailing slash: the form both clients save and
// compare.
func ServerURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(strings.TrimSpace(s), "/"))
	switch {
	case s == "":
		return "", errors.New("no server: give its URL, https://host[:port]")
	case err != nil:
		return "", fmt.Errorf("server URL %q: %w", s, err)
	case u.Scheme != "https" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", fmt.Errorf("server URL %q: want https://host[:port]", s)
	}
	return "https://" + strings.ToLower(u.Host), nil
}

// WriteJSON prints v as indented JSON: the wire types' field names, which
// scripts may rely on.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteTable prints rows under a header, in aligned columns. Empty cells
// show as "-".
func WriteTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = Cell(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// Cell makes a value fit one table cell: one line, "-" when empty.
func Cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	return s
}

// Time shows a time to a person, in local time to the minute; "-" for
// none.
func Time(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04 MST")
}

// Duration rounds a duration for a person: "12h", "11h58m", "4m", "42s".
func Duration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	s := strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Expiry shows an expiry with the time left, or "(expired)" followed by
// hint (what to do, such as ": run ferry login") once it has passed.
func Expiry(t, now time.Time, hint string) string {
	if t.IsZero() {
		return "-"
	}
	left := t.Sub(now)
	if left <= 0 {
		return Time(t) + " (expired" + hint + ")"
	}
	return fmt.Sprintf("%s (in %s)", Time(t), Duration(left))
}

// Version returns built, the version set at build time, else the module
// version, else "dev".
func Version(built string) string {
	if built != "" {
		return built
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// VersionLine is what "PROGRAM version" prints.
func VersionLine(program, built string) string {
	return fmt.Sprintf("%s %s (%s, %s/%s)", program, Version(built), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// Explanations are what a client says for the API answers whose message
// depends on the client.
type Explanations struct {
	// Unauthorized is said for a missing or ended session (401), such as
	// "not signed in or session expired: run ferry login".
	Unauthorized string
	// Forbidden, when set, replaces the server's message for 403.
	Forbidden error
}

// Explain turns an API error into what the person should do: a 401 says
// how to sign in, other 4xx keep the server's message (which names the
// field or the rule), and anything else is returned as it is.
func Explain(err error, x Explanations) error {
	var ae *client.Error
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &ae):
		return err
	case ae.Status == http.StatusUnauthorized:
		return errors.New(x.Unauthorized)
	case ae.Status == http.StatusForbidden && x.Forbidden != nil:
		return x.Forbidden
	case ae.Status >= 400 && ae.Status < 500 && ae.Message != "":
		return errors.New(ae.Message)
	}
	return err
}
