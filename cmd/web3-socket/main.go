// Command web3-socket is the real-time Socket.IO middleware: browsers connect
// over Socket.IO, backends talk through the bus and the REST API.
//
// Usage:
//
//	web3-socket [serve] [flags]       start the server (the default)
//	web3-socket token --sub ID [--ttl 24h] [--rooms a,b*]
//	web3-socket version
//	web3-socket config check [flags]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/web3-socket/web3-socket/cmd/web3-socket/app"
)

// version and commit are set at build time:
//
//	go build -ldflags "-X main.version=1.2.3 -X main.commit=$(git rev-parse HEAD)"
var (
	version = "dev"
	commit  = ""
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // invalid configuration, or the server stopped with an error
	exitUsage = 2 // unknown command or flag
)

// devTokenSub and devTokenTTL describe the client token of the development banner.
const (
	devTokenSub = "dev-user"
	devTokenTTL = 24 * time.Hour
)

const usage = `web3-socket: real-time Socket.IO middleware

Usage:
  web3-socket [serve] [flags]                          start the server (default)
  web3-socket token --sub ID [--ttl 24h] [--rooms a,b*] print a client JWT signed with JWT_SECRET
  web3-socket version                                  print version, commit and Go version
  web3-socket config check [flags]                     validate the configuration and print it

Settings come from, lowest first: defaults, --config file.yaml, .env, the
environment (PORT, JWT_SECRET, …), flags (--port, --jwt-secret, …).
Run "web3-socket serve --help" for every flag.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a sub-command and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd, rest := "serve", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(rest, stdout, stderr)
	case "token":
		return token(rest, stdout, stderr)
	case "version":
		printVersion(stdout)
		return exitOK
	case "config":
		if len(rest) > 0 && rest[0] == "check" {
			return configCheck(rest[1:], stdout, stderr)
		}
		fmt.Fprint(stderr, "web3-socket config: want a sub-command: config check\n")
		return exitUsage
	case "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "web3-socket: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

// parseFlags parses args into fs, printing the flags on --help. It returns
// false with the exit code when the command must stop.
func parseFlags(fs *pflag.FlagSet, args []string, stdout, stderr io.Writer) (int, bool) {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage of %s:\n%s", fs.Name(), fs.FlagUsages())
	}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		return exitOK, false
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v (see --help)\n", fs.Name(), err)
		return exitUsage, false
	}
	return exitOK, true
}

// load reads the configuration for a command whose flags are already parsed.
func load(fs *pflag.FlagSet, stderr io.Writer) (app.Config, app.Generated, bool) {
	cfg, gen, err := app.LoadConfigFlags(fs, nil)
	if err != nil {
		fmt.Fprintf(stderr, "%s: configuration:\n%s\n", fs.Name(), indentErr(err))
		return app.Config{}, app.Generated{}, false
	}
	return cfg, gen, true
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs := app.NewFlagSet("web3-socket serve")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	cfg, gen, ok := load(fs, stderr)
	if !ok {
		return exitFail
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "web3-socket: invalid configuration:\n%s\n", indentErr(err))
		return exitFail
	}
	logger, closer, err := app.NewLogger(cfg, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "web3-socket: logging: %v\n", err)
		return exitFail
	}
	defer closer.Close()

	printBanner(stdout, cfg, gen)

	logger.Debug("configuration", "config", cfg) // Config.LogValue redacts the secrets

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Once shutdown has begun, a second signal gets its default effect and
	// kills a process whose shutdown hangs.
	go func() {
		<-ctx.Done()
		stop()
	}()
	if err := app.Run(ctx, cfg, logger, version); err != nil {
		logger.Error("web3-socket stopped", "err", err)
		return exitFail
	}
	return exitOK
}

// printBanner tells a developer how to use the server that is starting: the
// URL and, in development only, the generated secrets, a client token and a
// curl and a JavaScript line that work as printed.
func printBanner(w io.Writer, cfg app.Config, gen app.Generated) {
	base := "http://" + net.JoinHostPort(bannerHost(cfg.Host), strconv.Itoa(cfg.Port))
	if cfg.Production() {
		fmt.Fprintf(w, "web3-socket %s (production) on %s, bus %s, instance %s\n",
			version, base, cfg.Bus, cfg.InstanceID)
		return
	}

	fmt.Fprintf(w, "\nweb3-socket %s (development), bus %s, instance %s\n\n", version, cfg.Bus, cfg.InstanceID)
	fmt.Fprintf(w, "  URL:          %s\n", base)
	apiKey := "$API_KEY"
	if gen.APIKey != "" {
		apiKey = gen.APIKey
		fmt.Fprintf(w, "  API key:      %s   (generated; set API_KEY to keep it)\n", gen.APIKey)
	}
	if gen.JWTSecret != "" {
		fmt.Fprintf(w, "  JWT secret:   %s   (generated; set JWT_SECRET to keep it)\n", gen.JWTSecret)
	}
	token := "<client token>"
	if cfg.JWTSecret != "" {
		t, err := app.MintToken(cfg, devTokenSub, devTokenTTL, nil)
		if err == nil {
			token = t
			fmt.Fprintf(w, "  Client token: %s\n                (sub %s, valid %s)\n", t, devTokenSub, shortDuration(devTokenTTL))
		}
	}
	fmt.Fprintf(w, "\n  Send a message to %s:\n    curl -X POST %s/api/message -H 'X-API-Key: %s' -H 'Content-Type: application/json' -d '{\"userId\":\"%s\",\"event\":\"notification\",\"data\":{\"message\":\"Hello\"}}'\n",
		devTokenSub, base, apiKey, devTokenSub)
	fmt.Fprintf(w, "\n  Receive it in JavaScript (socket.io-client):\n    io(%q, { auth: { token: %q } }).on(\"notification\", (data) => console.log(data));\n\n",
		base, token)
	fmt.Fprint(w, "  The README's examples read these two variables; in another shell:\n    export")
	if gen.APIKey != "" {
		fmt.Fprintf(w, " API_KEY=%s", gen.APIKey)
	}
	fmt.Fprintf(w, " TOKEN=%s\n\n", token)
	if gen.APIKey != "" || gen.JWTSecret != "" {
		fmt.Fprint(w, "  Generated secrets change on every start; put them in .env to keep them.\n\n")
	}
}

// shortDuration writes 24h rather than 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// bannerHost is the host a local client dials: localhost when the server
// binds every interface.
func bannerHost(host string) string {
	switch host {
	case "", "0.0.0.0", "::", "[::]":
		return "localhost"
	}
	return strings.Trim(host, "[]")
}

func token(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("web3-socket token", pflag.ContinueOnError)
	fs.SortFlags = false
	sub := fs.String("sub", "", "user id, the sub claim (required)")
	ttl := fs.Duration("ttl", devTokenTTL, "how long the token is valid")
	rooms := fs.StringSlice("rooms", nil, "room patterns the client may join itself, comma-separated, * as wildcard")
	fs.AddFlagSet(app.NewFlagSet(fs.Name()))
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if *sub == "" {
		fmt.Fprintln(stderr, "web3-socket token: --sub is required (the user id)")
		return exitUsage
	}
	cfg, gen, ok := load(fs, stderr)
	if !ok {
		return exitFail
	}
	if gen.JWTSecret != "" || cfg.JWTSecret == "" {
		// A secret made up for this process would sign a token no server accepts.
		fmt.Fprintln(stderr, "web3-socket token: JWT_SECRET is not set: set it in .env, the environment or with --jwt-secret, the same as the server's")
		return exitFail
	}
	var patterns []string
	for _, r := range *rooms {
		if r = strings.TrimSpace(r); r != "" {
			patterns = append(patterns, r)
		}
	}
	t, err := app.MintToken(cfg, *sub, *ttl, patterns)
	if err != nil {
		fmt.Fprintf(stderr, "web3-socket token: %v\n", err)
		return exitFail
	}
	fmt.Fprintln(stdout, t)
	return exitOK
}

func printVersion(w io.Writer) {
	rev := commit
	if rev == "" {
		rev = "unknown"
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" && s.Value != "" {
					rev = s.Value
				}
			}
		}
	}
	fmt.Fprintf(w, "web3-socket %s\ncommit: %s\ngo: %s\n", version, rev, runtime.Version())
}

func configCheck(args []string, stdout, stderr io.Writer) int {
	fs := app.NewFlagSet("web3-socket config check")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	cfg, gen, ok := load(fs, stderr)
	if !ok {
		return exitFail
	}
	fmt.Fprintln(stdout, "# effective configuration, secrets redacted")
	if gen.JWTSecret != "" || gen.APIKey != "" {
		fmt.Fprintln(stdout, "# development: the unset JWT_SECRET/API_KEY are generated anew on every start")
	}
	for _, line := range cfg.Redacted().EnvLines() {
		fmt.Fprintln(stdout, line)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "invalid configuration:\n%s\n", indentErr(err))
		return exitFail
	}
	fmt.Fprintln(stdout, "# configuration is valid")
	return exitOK
}

// indentErr puts each of the joined errors on its own bulleted line.
func indentErr(err error) string {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = "  - " + l
	}
	return strings.Join(lines, "\n")
}
