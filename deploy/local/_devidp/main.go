// Command devidp serves authn/devop, ferry's development OpenID Provider,
// over HTTPS for the local multi-node setup in deploy/local: the nodes and
// the person's browser must reach one issuer URL, and ferryd accepts a
// plain-http issuer on loopback only.
//
// It lives in a directory whose name starts with "_", so "go build ./...",
// "go vet ./..." and "go test ./..." skip it; deploy/local/up.sh builds it
// explicitly. It is a demo provider: passwords in plain text, keys and
// sessions in memory. Nothing imports it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ferryvpn/ferry/authn/devop"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devidp:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		addr       = flag.String("addr", "", "host:port to listen on (required)")
		issuer     = flag.String("issuer", "", "issuer URL, https://host:port (required)")
		clientID   = flag.String("client-id", "ferry", "the one registered client")
		secretFile = flag.String("client-secret-file", "", "file holding the client secret (required)")
		redirects  []string
		certFile   = flag.String("cert", "", "TLS certificate (PEM) for the issuer's host (required unless the issuer is http://127.0.0.1)")
		keyFile    = flag.String("key", "", "TLS key (PEM) (required with --cert)")
		users      = devop.DemoUsers()
	)
	flag.Func("redirect-uri", "a redirect URI of the client, https://PUBLIC/callback (required; repeat for several)", func(v string) error {
		redirects = append(redirects, v)
		return nil
	})
	flag.Func("user", "an extra account NAME:PASSWORD[:GROUP,GROUP...] (repeatable; demo and alice always exist)", func(v string) error {
		u, err := parseUser(v)
		if err == nil {
			users = append(users, u)
		}
		return err
	})
	flag.Parse()
	// Plain HTTP only on loopback, as ferryd accepts it (the README's
	// walkthrough on one machine).
	plain := strings.HasPrefix(*issuer, "http://127.0.0.1:") && strings.HasPrefix(*addr, "127.0.0.1:")
	required := map[string]string{"addr": *addr, "issuer": *issuer, "client-secret-file": *secretFile}
	if !plain {
		required["cert"], required["key"] = *certFile, *keyFile
	}
	for name, v := range required {
		if v == "" {
			return fmt.Errorf("--%s is required", name)
		}
	}
	if len(redirects) == 0 {
		return errors.New("--redirect-uri is required")
	}
	secret, err := os.ReadFile(*secretFile)
	if err != nil {
		return fmt.Errorf("--client-secret-file: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	op, err := devop.New(devop.Config{
		Issuer: *issuer, ClientID: *clientID, ClientSecret: strings.TrimSpace(string(secret)),
		RedirectURIs: redirects, Users: users, Logger: log,
	})
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: *addr, Handler: op.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if plain && *certFile == "" {
			errc <- srv.ListenAndServe()
			return
		}
		errc <- srv.ListenAndServeTLS(*certFile, *keyFile)
	}()
	log.Info("serving", "issuer", op.Issuer(), "addr", *addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// parseUser parses --user NAME:PASSWORD[:GROUP,GROUP...].
func parseUser(v string) (devop.User, error) {
	parts := strings.SplitN(v, ":", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return devop.User{}, fmt.Errorf("%q: want NAME:PASSWORD[:GROUP,GROUP...]", v)
	}
	u := devop.User{Username: parts[0], Password: parts[1]}
	if len(parts) == 3 && parts[2] != "" {
		u.Groups = strings.Split(parts[2], ",")
	}
	return u, nil
}
