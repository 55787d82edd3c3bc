// Command parley is the command-line client of Parley: register and log in,
// send messages, follow conversations live, read history and manage groups.
//
//	parley [--server URL] [--config FILE] <command> [flags] [args]
//
// Run `parley --help` for the commands and `parley <command> --help` for
// the flags of one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/parley-chat/parley/client"
)

const defaultServer = "http://localhost:8080"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	code := a.main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// app is one invocation of the CLI, with its streams and global options.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	serverFlag string // --server
	configFlag string // --config
	verbose    bool

	configPath string
	cfg        *fileConfig
	httpClient *http.Client // nil: http.DefaultClient (tests may set it)
}

// command is a subcommand.
type command struct {
	name     string
	synopsis string // arguments, after the name
	summary  string // one line, for `parley --help`
	help     string // paragraphs, for `parley <cmd> --help`
	run      func(ctx context.Context, a *app, c *command, args []string) error
}

var commands []*command

func init() {
	commands = []*command{
		registerCmd, loginCmd, logoutCmd, whoamiCmd,
		sendCmd, downloadCmd, listenCmd, historyCmd, conversationsCmd, groupsCmd,
		blocksCmd, reportCmd,
	}
}

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct {
	cmd string
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// globalFlags declares the flags every command accepts.
func (a *app) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&a.serverFlag, "server", a.serverFlag, "server base `URL`, or several separated by commas (a cluster's nodes: the socket moves to the next when its node goes away) (env PARLEY_SERVER; default: the server you logged in to, else "+defaultServer+")")
	fs.StringVar(&a.configFlag, "config", a.configFlag, "config `file` (env PARLEY_CONFIG; default: "+defaultConfigHint()+")")
	fs.BoolVar(&a.verbose, "verbose", a.verbose, "log connection details to stderr")
}

func defaultConfigHint() string {
	if dir, err := os.UserConfigDir(); err == nil {
		return dir + "/parley/config.json"
	}
	return "<user config dir>/parley/config.json"
}

// main runs the CLI and returns the exit status.
func (a *app) main(ctx context.Context, args []string) int {
	top := flag.NewFlagSet("parley", flag.ContinueOnError)
	top.SetOutput(a.stderr)
	a.globalFlags(top)
	top.Usage = func() {} // printed below, once, to the right stream
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.printUsage(a.stdout)
			return 0
		}
		a.printUsage(a.stderr)
		return 2
	}
	rest := top.Args()
	if len(rest) == 0 {
		a.printUsage(a.stderr)
		return 2
	}
	name, rest := rest[0], rest[1:]
	if name == "help" {
		if len(rest) == 0 {
			a.printUsage(a.stdout)
			return 0
		}
		return a.main(ctx, append([]string{rest[0], "--help"}, rest[1:]...))
	}
	cmd := findCommand(name)
	if cmd == nil {
		fmt.Fprintf(a.stderr, "parley: unknown command %q\nRun 'parley --help' for the list of commands.\n", name)
		return 2
	}
	err := cmd.run(ctx, a, cmd, rest)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(a.stderr, "parley %s: %s\nRun 'parley %s --help' for usage.\n", cmd.name, ue.msg, cmd.name)
		return 2
	}
	fmt.Fprintf(a.stderr, "parley %s: %s\n", cmd.name, describeError(err))
	return 1
}

func (a *app) printUsage(w io.Writer) {
	fmt.Fprint(w, `parley is the command-line client of Parley, a self-hostable chat server.

Usage:
  parley [global flags] <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Global flags (also accepted after the command name):
  --server URL    server base URL; env PARLEY_SERVER; default: the server
                  of the last login, else `+defaultServer+`. Several URLs
                  separated by commas (a cluster's nodes): the socket moves
                  to the next when its node goes away
  --config FILE   config file; env PARLEY_CONFIG; default: `+defaultConfigHint()+`
  --verbose       log connection details to stderr

Start with:
  parley register alice
  parley login alice
  parley send @bob hello there
  parley listen

Run 'parley <command> --help' for the flags and arguments of a command.
`)
}

// newFlagSet returns a command's flag set, with the global flags and a usage
// text built from the command's help.
func (a *app) newFlagSet(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet("parley "+c.name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	a.globalFlags(fs)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: parley %s [flags] %s\n\n%s\n", c.name, c.synopsis, strings.TrimSpace(c.help))
		fmt.Fprintf(w, "\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseNoArgs parses the flags of a command that takes no arguments.
func (a *app) parseNoArgs(fs *flag.FlagSet, cmd *command, args []string) error {
	rest, err := a.parse(fs, args, -1)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return usagef(cmd.name, "takes no arguments")
	}
	return nil
}

// parse parses a command's flags, which may be mixed with its arguments,
// until `--` or until stopAfter arguments were seen (stopAfter < 0: no
// limit); everything after that is an argument even if it starts with a
// dash. It prints usage to stdout and returns flag.ErrHelp for --help.
func (a *app) parse(fs *flag.FlagSet, args []string, stopAfter int) ([]string, error) {
	var pos []string
	for {
		fs.SetOutput(io.Discard)
		err := fs.Parse(args)
		fs.SetOutput(a.stderr)
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(a.stdout)
			fs.Usage()
			return nil, flag.ErrHelp
		}
		if err != nil {
			return nil, usagef(strings.TrimPrefix(fs.Name(), "parley "), "%v", err)
		}
		rest := fs.Args()
		// flag stops at the first non-flag or after "--"; find out which.
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
		if stopAfter >= 0 && len(pos) >= stopAfter {
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			return append(pos, args...), nil
		}
	}
}

// load reads the config file (once) and resolves the server.
func (a *app) load() error {
	if a.cfg != nil {
		return nil
	}
	p, err := configPath(a.configFlag, a.getenv)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(p)
	if err != nil {
		return err
	}
	a.configPath, a.cfg = p, cfg
	return nil
}

// server returns the server setting: --server, $PARLEY_SERVER, the config
// file, the default. It is one base URL, or several separated by commas
// (the nodes of a cluster), each normalized.
func (a *app) server() string {
	switch {
	case a.serverFlag != "":
		return normalizeServers(a.serverFlag)
	case a.getenv("PARLEY_SERVER") != "":
		return normalizeServers(a.getenv("PARLEY_SERVER"))
	case a.cfg != nil && a.cfg.Server != "":
		return normalizeServers(a.cfg.Server)
	}
	return defaultServer
}

// servers is server() as a list. The socket starts on the first and moves
// to the next whenever its node goes away; commands that need no socket
// (register, login) use the first.
func (a *app) servers() []string { return strings.Split(a.server(), ",") }

// normalizeServers normalizes each URL of a comma-separated list.
func normalizeServers(list string) string {
	var out []string
	for _, u := range strings.Split(list, ",") {
		if u = client.NormalizeURL(u); u != "" {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return defaultServer
	}
	return strings.Join(out, ",")
}

// session returns an SDK client for the logged-in user; mod may adjust
// its configuration.
func (a *app) session(mod func(*client.Config)) (*client.Client, error) {
	if err := a.load(); err != nil {
		return nil, err
	}
	if a.cfg.Token == "" {
		return nil, errors.New("not logged in: run 'parley login <username>' first")
	}
	cfg := client.Config{
		URLs:       a.servers(),
		Token:      a.cfg.Token,
		Logger:     a.logger(),
		HTTPClient: a.httpClient,
	}
	if mod != nil {
		mod(&cfg)
	}
	return client.New(cfg), nil
}

func (a *app) logger() *slog.Logger {
	if !a.verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// describeError renders an error for humans: the server's message and status.
func describeError(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		msg := sanitize(ae.Message)
		if msg == "" {
			msg = http.StatusText(ae.Status)
		}
		s := fmt.Sprintf("%s (status %d %s)", msg, ae.Status, ae.Code)
		if ae.RetryAfter > 0 {
			s += fmt.Sprintf("; retry after %s", ae.RetryAfter.Round(time.Millisecond))
		}
		switch {
		case ae.Status == 401 || ae.Status == 440:
			s += "\nYour session is no longer valid: run 'parley login <username>'."
		}
		return s
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out: " + err.Error()
	}
	return err.Error()
}
