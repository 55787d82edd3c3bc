package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/server"
)

const adminUsage = `parleyd admin: the operators' tools, run against the server's store.

Usage: parleyd admin [--data-dir DIR | --postgres URL] <command> [args]

  reports [--all]                  open reports (all with --all), each with the
                                   reported message
  resolve <report-id> <note...>    mark a report resolved
  suspend <username> <reason...>   suspend an account: its tokens stop working at
                                   once and its logins get 403
  unsuspend <username>             lift a suspension
  invite [ttl]                     print a single-use invite for --registration
                                   invite (valid 168h unless ttl says otherwise)

The store is the one parleyd uses: --data-dir (default ./data, PARLEY_DATA_DIR) or
--postgres (PARLEY_POSTGRES). The embedded store may be used while parleyd runs.
`

// runAdmin is "parleyd admin ...".
func runAdmin(args []string, stdout, stderr io.Writer) int {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("parleyd admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", envOr("PARLEY_DATA_DIR", cfg.DataDir), "directory of the embedded store")
	fs.StringVar(&cfg.Postgres, "postgres", os.Getenv("PARLEY_POSTGRES"), "PostgreSQL URL of the store")
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := server.OpenStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "parleyd admin: %v\n", err)
		return 1
	}
	defer store.Close()
	st, ok := store.(chat.SafetyStore)
	if !ok {
		fmt.Fprintln(stderr, "parleyd admin: this store keeps no reports or suspensions")
		return 1
	}
	if err := admin(ctx, store, st, rest[0], rest[1:], stdout); err != nil {
		fmt.Fprintf(stderr, "parleyd admin %s: %v\n", rest[0], err)
		if errors.Is(err, errAdminUsage) {
			return 2
		}
		return 1
	}
	return 0
}

var errAdminUsage = errors.New("usage")

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func admin(ctx context.Context, store chat.Store, st chat.SafetyStore, cmd string, args []string, out io.Writer) error {
	now := time.Now().UnixMilli()
	user := func(name string) (chat.User, error) {
		u, _, err := store.UserByUsername(ctx, strings.TrimPrefix(name, "@"))
		if errors.Is(err, chat.ErrNotFound) {
			return u, fmt.Errorf("no user named %q", name)
		}
		return u, err
	}
	switch cmd {
	case "reports":
		all := len(args) > 0 && args[0] == "--all"
		reports, err := st.Reports(ctx, all, 1000)
		if err != nil {
			return err
		}
		if len(reports) == 0 {
			fmt.Fprintln(out, "no reports")
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, r := range reports {
			name := func(id string) string {
				if u, err := store.User(ctx, id); err == nil {
					return "@" + u.Username
				}
				return id
			}
			state := "open"
			if r.ResolvedAt > 0 {
				state = "resolved " + time.UnixMilli(r.ResolvedAt).UTC().Format(time.DateTime) + ": " + r.Resolution
			}
			fmt.Fprintf(tw, "report %s\t%s\tby %s\t%s\n", r.ID, time.UnixMilli(r.CreatedAt).UTC().Format(time.DateTime), name(r.ReporterID), state)
			fmt.Fprintf(tw, "  reason:\t%s\n", quote(r.Reason))
			msgs, _, err := store.Messages(ctx, r.ConversationID, chat.Page{After: r.Seq - 1, Forward: true, Limit: 1})
			if err != nil || len(msgs) == 0 || msgs[0].Seq != r.Seq {
				fmt.Fprintf(tw, "  message:\t#%d of %s (not found)\n", r.Seq, r.ConversationID)
				continue
			}
			m := msgs[0]
			fmt.Fprintf(tw, "  message:\t#%d of %s by %s at %s: [%s] %s\n", m.Seq, m.ConversationID, name(m.SenderID),
				time.UnixMilli(m.Timestamp).UTC().Format(time.DateTime), m.ContentType, quote(m.Content))
		}
		return tw.Flush()
	case "resolve":
		if len(args) < 2 {
			return fmt.Errorf("%w: resolve <report-id> <note...>", errAdminUsage)
		}
		if err := st.ResolveReport(ctx, args[0], strings.Join(args[1:], " "), now); err != nil {
			return err
		}
		fmt.Fprintf(out, "resolved report %s\n", args[0])
	case "suspend", "unsuspend":
		if len(args) < 1 || (cmd == "suspend" && len(args) < 2) {
			return fmt.Errorf("%w: suspend <username> <reason...> | unsuspend <username>", errAdminUsage)
		}
		u, err := user(args[0])
		if err != nil {
			return err
		}
		if cmd == "suspend" {
			err = st.Suspend(ctx, u.ID, strings.Join(args[1:], " "), now)
		} else {
			err = st.Unsuspend(ctx, u.ID)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%sed @%s (%s)\n", cmd, u.Username, u.ID)
	case "invite":
		ttl := 7 * 24 * time.Hour
		if len(args) > 0 {
			d, err := time.ParseDuration(args[0])
			if err != nil || d <= 0 {
				return fmt.Errorf("%w: invite [ttl], e.g. 48h", errAdminUsage)
			}
			ttl = d
		}
		token := rand.Text() // 128 random bits
		if err := st.CreateInvite(ctx, chat.HashToken(token), now, now+ttl.Milliseconds()); err != nil {
			return err
		}
		fmt.Fprintln(out, token)
	default:
		return fmt.Errorf("%w: unknown command %q (reports, resolve, suspend, unsuspend, invite)", errAdminUsage, cmd)
	}
	return nil
}

// quote shows user text on the operator's terminal: one line, with
// control and bidi formatting characters escaped (strconv.Quote escapes
// everything that is not printable).
func quote(s string) string {
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
