package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/parley-chat/parley/client"
)

var registerCmd = &command{
	name:     "register",
	synopsis: "<username>",
	summary:  "create an account",
	help: `Creates an account on the server. The username must match ^[a-z0-9_.-]{3,32}$
and the password must have at least 8 characters.

The password is read from $PARLEY_PASSWORD, from the first line of stdin
with --password-stdin, or else asked for on the terminal (not echoed).
With --login it logs in too, without asking for the password again.`,
	run: runRegister,
}

func runRegister(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.newFlagSet(cmd)
	display := fs.String("display-name", "", "display `name` shown to others (default: the username)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	andLogin := fs.Bool("login", false, "log in right after registering")
	device := fs.String("device-name", defaultDeviceName(), "device `name` for --login")
	args, err := a.parse(fs, args, -1)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef(cmd.name, "expected exactly one username, got %d arguments", len(args))
	}
	username := strings.TrimPrefix(args[0], "@")
	if err := a.load(); err != nil {
		return err
	}
	password, err := a.readPassword(*pwStdin, "Password for new user "+username+": ")
	if err != nil {
		return err
	}
	server := strings.Join(a.servers(), ",")
	u, err := client.Register(ctx, server, username, password, *display) // the first node that answers
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "registered %s (user id %s) on %s\n", u.Username, u.UserID, server)
	if !*andLogin {
		fmt.Fprintf(a.stdout, "log in with: parley login %s\n", u.Username)
		return nil
	}
	return a.doLogin(ctx, username, password, *device, true)
}

var loginCmd = &command{
	name:     "login",
	synopsis: "<username>",
	summary:  "log in and remember the session",
	help: `Logs in and stores the server URL, token, user id, device id and username
in the config file (mode 0600). Logging in again as the same user on the
same server reuses this machine's device id (unless --new-device), so the
device keeps its history of receipts instead of piling up new devices.

The password is read from $PARLEY_PASSWORD, from the first line of stdin
with --password-stdin, or else asked for on the terminal (not echoed).`,
	run: runLogin,
}

func runLogin(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.newFlagSet(cmd)
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	device := fs.String("device-name", defaultDeviceName(), "`name` of this device, shown in 'parley whoami'")
	newDevice := fs.Bool("new-device", false, "register a new device even if this machine has one")
	args, err := a.parse(fs, args, -1)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef(cmd.name, "expected exactly one username, got %d arguments", len(args))
	}
	username := strings.TrimPrefix(args[0], "@")
	if err := a.load(); err != nil {
		return err
	}
	password, err := a.readPassword(*pwStdin, "Password for "+username+": ")
	if err != nil {
		return err
	}
	return a.doLogin(ctx, username, password, *device, *newDevice)
}

// errWrongPassword is a refused login: the server does not say which of
// the two was wrong.
var errWrongPassword = errors.New("wrong username or password")

func (a *app) doLogin(ctx context.Context, username, password, deviceName string, newDevice bool) error {
	server := a.server()
	req := client.LoginRequest{Username: username, Password: password, DeviceName: deviceName}
	if !newDevice && a.cfg.Username == username && a.cfg.DeviceID != "" &&
		normalizeServers(a.cfg.Server) == server {
		req.DeviceID = a.cfg.DeviceID
	}
	nodes := strings.Join(a.servers(), ",") // the first node that answers
	sess, err := client.Login(ctx, nodes, req)
	if err != nil && req.DeviceID != "" {
		switch client.StatusOf(err) {
		case 400, 403, 404, 422:
			// The remembered device is gone: make a new one.
			req.DeviceID = ""
			sess, err = client.Login(ctx, nodes, req)
		}
	}
	if client.StatusOf(err) == 401 {
		return fmt.Errorf("log in as %s: %w", username, errWrongPassword)
	}
	if err != nil {
		return err
	}
	if a.cfg.Username != username || normalizeServers(a.cfg.Server) != server {
		a.cfg.Cursors = nil
	}
	a.cfg.Server = server
	a.cfg.Token = sess.Token
	a.cfg.UserID = sess.UserID
	a.cfg.DeviceID = sess.DeviceID
	a.cfg.Username = username
	a.cfg.ExpiresAt = sess.ExpiresAt
	if err := saveConfig(a.configPath, a.cfg); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "logged in as %s on %s (device %s)\n", username, server, sess.DeviceID)
	return nil
}

var logoutCmd = &command{
	name:    "logout",
	summary: "end the session and forget its token",
	help: `Revokes the session's token on the server and removes it from the config
file. The server URL, username and device id are kept for the next login.`,
	run: runLogout,
}

func runLogout(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.newFlagSet(cmd)
	if err := a.parseNoArgs(fs, cmd, args); err != nil {
		return err
	}
	c, err := a.session(nil)
	if err != nil {
		return err
	}
	if err := c.Logout(ctx); err != nil && !client.IsUnauthorized(err) {
		return err
	}
	a.cfg.Token, a.cfg.ExpiresAt = "", 0
	if err := saveConfig(a.configPath, a.cfg); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "logged out %s\n", a.cfg.Username)
	return nil
}

var whoamiCmd = &command{
	name:    "whoami",
	summary: "show the logged-in user and its devices",
	help:    `Shows the user this CLI is logged in as, on which server, and the user's devices.`,
	run:     runWhoami,
}

func runWhoami(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.newFlagSet(cmd)
	if err := a.parseNoArgs(fs, cmd, args); err != nil {
		return err
	}
	c, err := a.session(nil)
	if err != nil {
		return err
	}
	me, err := c.Me(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%s", me.Username)
	if me.DisplayName != "" && me.DisplayName != me.Username {
		fmt.Fprintf(a.stdout, " (%s)", sanitize(me.DisplayName))
	}
	fmt.Fprintf(a.stdout, "\nuser id:   %s\ndevice id: %s\nserver:    %s\n", me.UserID, a.cfg.DeviceID, a.server())
	if a.cfg.ExpiresAt > 0 {
		fmt.Fprintf(a.stdout, "expires:   %s\n", time.UnixMilli(a.cfg.ExpiresAt).Format(time.DateTime))
	}
	if len(me.Devices) > 0 {
		fmt.Fprintln(a.stdout, "devices:")
		tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
		for _, d := range me.Devices {
			this := ""
			if d.DeviceID == a.cfg.DeviceID {
				this = "(this device)"
			}
			fmt.Fprintf(tw, "  %s\t%s\tlast seen %s\t%s\n", d.DeviceID, sanitize(d.DeviceName), fmtWhen(d.LastSeen), this)
		}
		tw.Flush()
	}
	return nil
}

var sendCmd = &command{
	name:     "send",
	synopsis: "<conversation-id|@username> <text...>  |  --file PATH <conversation-id|@username> [caption...]",
	summary:  "send a message or a file",
	help: `Sends a message and waits until the server has stored it. The target is a
conversation id (or a unique suffix of one, as 'parley conversations' and
'parley listen' show), or @username for the direct conversation with that
user (created if needed). The text is the remaining arguments joined by
spaces; a single "-" reads the text from stdin.

Flags go before the text: everything after the conversation is text.

If the connection drops before the server acknowledges, the message is sent
again with the same id after reconnecting: it is stored once.

With --file PATH the file is uploaded first (resumably, with a progress bar
on stderr: if the upload is interrupted, the same command resumes it) and sent
as an image, video, voice or file message, as the server decides from its
bytes; the text, optional then, is its caption. 'parley download' fetches it.`,
	run: runSend,
}

func runSend(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.newFlagSet(cmd)
	replyTo := fs.Int64("reply-to", 0, "reply to the message with this `seq`")
	ctype := fs.String("type", client.ContentText, "content `type`: text, image, video, voice, file or e2ee")
	media := fs.String("media-id", "", "attach an uploaded media `id`")
	msgID := fs.String("id", "", "client message `id`, the idempotency key: sending again with the same id stores the message once (default: a new ULID)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this `duration` (not counting a --file upload)")
	file := fs.String("file", "", "upload this `file` and send it (see above)")
	args, err := a.parse(fs, args, 1)
	if err != nil {
		return err
	}
	target, text, err := sendArgs(args, a.stdin)
	if *file != "" && len(args) == 1 {
		target, text, err = args[0], "", nil // a file needs no caption
	}
	if err != nil {
		return usagef(cmd.name, "%v", err)
	}
	c, err := a.session(func(cfg *client.Config) { cfg.NoSync = true })
	if err != nil {
		return err
	}
	var attach []client.SendOption
	if *file != "" {
		m, err := a.uploadFile(ctx, c, *file)
		if err != nil {
			return err
		}
		attach = []client.SendOption{client.WithContentType(m.Kind), client.WithMediaID(m.MediaID)}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	convID, err := resolveConversation(ctx, c, target)
	if err != nil {
		return err
	}
	opts := []client.SendOption{client.WithContentType(*ctype)}
	if *replyTo > 0 {
		opts = append(opts, client.WithReplyTo(*replyTo))
	}
	if *media != "" {
		opts = append(opts, client.WithMediaID(*media))
	}
	if *msgID != "" {
		opts = append(opts, client.WithMessageID(*msgID))
	}
	opts = append(opts, attach...)
	stop := startRun(ctx, c)
	ack, err := c.Send(ctx, convID, text, opts...)
	stop()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no acknowledgement from %s within %s (the message may still be stored; send again with --id to be sure)", a.server(), *timeout)
		}
		return err
	}
	fmt.Fprintf(a.stdout, "sent to %s as seq %d (message id %s)\n", convID, ack.Seq, ack.MessageID)
	return nil
}

// sendArgs splits send's arguments into the target and the text.
func sendArgs(args []string, stdin io.Reader) (target, text string, err error) {
	if len(args) == 0 {
		return "", "", errors.New("missing the conversation id or @username")
	}
	target = args[0]
	if len(args) == 1 {
		return "", "", errors.New("missing the message text (use - to read it from stdin)")
	}
	if len(args) == 2 && args[1] == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
		if err != nil {
			return "", "", fmt.Errorf("read stdin: %w", err)
		}
		text = strings.TrimRight(string(b), "\r\n")
	} else {
		text = strings.Join(args[1:], " ")
	}
	if strings.TrimSpace(text) == "" {
		return "", "", errors.New("the message is empty")
	}
	return target, text, nil
}

// startRun runs c in the background, draining its events, and returns a
// function that stops it and returns Run's error.
func startRun(ctx context.Context, c *client.Client) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	go func() {
		for range c.Events() {
		}
	}()
	return func() error {
		cancel()
		return <-errc
	}
}

var historyCmd = &command{
	name:     "history",
	synopsis: "<conversation-id|@username>",
	summary:  "print a conversation's messages",
	help: `Prints the newest messages of a conversation, oldest first. Page back with
--before (the seq of the oldest message shown); read forward with --after.`,
	run: runHistory,
}

func runHistory(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.newFlagSet(cmd)
	before := fs.Int64("before", 0, "only messages with a seq below this `seq`")
	after := fs.Int64("after", 0, "only messages with a seq above this `seq` (oldest first)")
	limit := fs.Int("limit", 50, "at most `N` messages (the server caps it at 200)")
	args, err := a.parse(fs, args, -1)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef(cmd.name, "expected one conversation id or @username, got %d arguments", len(args))
	}
	if *before > 0 && *after > 0 {
		return usagef(cmd.name, "use --before or --after, not both")
	}
	if *limit < 0 {
		return usagef(cmd.name, "--limit must not be negative")
	}
	c, err := a.session(nil)
	if err != nil {
		return err
	}
	convID, err := resolveConversation(ctx, c, args[0])
	if err != nil {
		return err
	}
	p, err := c.History(ctx, convID, client.HistoryQuery{Before: *before, After: *after, Limit: *limit})
	if err != nil {
		return err
	}
	msgs := p.Messages
	if *after == 0 {
		slices.Reverse(msgs) // newest first on the wire
	}
	names := newNameCache(c, a.cfg)
	conv, err := c.Conversation(ctx, convID)
	if err != nil {
		return err
	}
	bySeq := make(map[int64]*client.Message, len(msgs))
	for i := range msgs {
		bySeq[msgs[i].Seq] = &msgs[i]
	}
	for _, m := range msgs {
		quote := ""
		if m.ReplyToSeq > 0 {
			quote = fmt.Sprintf("#%d", m.ReplyToSeq)
			if q := bySeq[m.ReplyToSeq]; q != nil {
				quote += fmt.Sprintf(" <%s>: %s", names.get(ctx, q.SenderID), oneLine(renderContent(q), 30))
			}
		}
		fmt.Fprint(a.stdout, historyLine(&m, names.get(ctx, m.SenderID), quote, ticks(&conv, &m, a.cfg.UserID)))
	}
	if len(msgs) == 0 {
		fmt.Fprintln(a.stderr, "(no messages)")
	}
	if p.HasMore && len(msgs) > 0 {
		if *after > 0 {
			fmt.Fprintf(a.stderr, "(newer messages: parley history %s --after %d)\n", args[0], msgs[len(msgs)-1].Seq)
		} else {
			fmt.Fprintf(a.stderr, "(older messages: parley history %s --before %d)\n", args[0], msgs[0].Seq)
		}
	}
	return nil
}

// historyLine renders one message of 'parley history': seq, time, sender
// and content, a reply marked with what it quotes ("(reply to #1 <bob>:
// hi)"), the lines of a multi-line message under the first one's text so
// that the seq and time columns stay clear, and the ticks at the end.
func historyLine(m *client.Message, sender, quote, ticks string) string {
	prefix := fmt.Sprintf("#%-5d %s <%s> ", m.Seq, m.Time().Local().Format(time.DateTime), sender)
	text := renderContent(m)
	if quote != "" {
		text = "(reply to " + quote + ") " + text
	}
	return prefix + indent(text, strings.Repeat(" ", utf8.RuneCountInString(prefix))) + ticks + "\n"
}

var conversationsCmd = &command{
	name:    "conversations",
	summary: "list your conversations",
	help:    `Lists your conversations, most recently active first, with unread counts.`,
	run:     runConversations,
}

func runConversations(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.newFlagSet(cmd)
	if err := a.parseNoArgs(fs, cmd, args); err != nil {
		return err
	}
	c, err := a.session(nil)
	if err != nil {
		return err
	}
	convs, err := c.Conversations(ctx)
	if err != nil {
		return err
	}
	if len(convs) == 0 {
		fmt.Fprintln(a.stderr, "(no conversations yet: try 'parley send @username hello')")
		return nil
	}
	names := newNameCache(c, a.cfg)
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tNAME\tLAST\tUNREAD\tLAST MESSAGE")
	for i := range convs {
		cv := &convs[i]
		preview := ""
		if m := cv.LastMessage; m != nil {
			preview = "<" + names.get(ctx, m.SenderID) + "> " + oneLine(renderContent(m), 50)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", cv.ConversationID, cv.Type, names.title(ctx, cv), cv.LastSeq, cv.UnreadCount, preview)
	}
	return tw.Flush()
}

// readPassword reads a password: the first line of stdin with fromStdin,
// else $PARLEY_PASSWORD, else a prompt on stderr and a line of stdin, read
// without echo when stdin is a terminal.
func (a *app) readPassword(fromStdin bool, prompt string) (string, error) {
	if !fromStdin {
		if p := a.getenv("PARLEY_PASSWORD"); p != "" {
			return p, nil
		}
		fmt.Fprint(a.stderr, prompt)
		if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			pw, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(a.stderr) // the Enter that was not echoed
			if err != nil {
				return "", fmt.Errorf("read password: %w", err)
			}
			if len(pw) == 0 {
				return "", errors.New("empty password")
			}
			return string(pw), nil
		}
	}
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		if err == io.EOF {
			return "", errors.New("no password given (stdin is empty)")
		}
		return "", fmt.Errorf("read password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty password")
	}
	return line, nil
}

func defaultDeviceName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "parley-cli"
	}
	return "parley-cli@" + host
}

// resolveConversation maps a command-line conversation reference to an id:
// @username is the direct conversation with that user (created if needed);
// otherwise an exact id, or a unique suffix or prefix of one of the user's
// conversation ids; anything else is passed to the server as is.
func resolveConversation(ctx context.Context, c *client.Client, ref string) (string, error) {
	if name, ok := strings.CutPrefix(ref, "@"); ok {
		if name == "" {
			return "", errors.New("empty @username")
		}
		u, err := c.UserByUsername(ctx, name)
		if err != nil {
			if client.IsNotFound(err) {
				return "", fmt.Errorf("no user named %q", name)
			}
			return "", err
		}
		conv, err := c.CreateDirect(ctx, u.UserID)
		if err != nil {
			return "", err
		}
		return conv.ConversationID, nil
	}
	if len(ref) < 4 {
		return ref, nil
	}
	convs, err := c.Conversations(ctx)
	if err != nil {
		return "", err
	}
	var matches []string
	for _, cv := range convs {
		if cv.ConversationID == ref {
			return ref, nil
		}
		if strings.HasSuffix(cv.ConversationID, ref) || strings.HasPrefix(cv.ConversationID, ref) {
			matches = append(matches, cv.ConversationID)
		}
	}
	switch len(matches) {
	case 0:
		return ref, nil
	case 1:
		return matches[0], nil
	}
	return "", fmt.Errorf("%q matches several conversations: %s", ref, strings.Join(matches, ", "))
}

// resolveUsers maps usernames (with or without @) to user ids.
func resolveUsers(ctx context.Context, c *client.Client, names []string) ([]client.User, error) {
	out := make([]client.User, 0, len(names))
	for _, n := range names {
		n = strings.TrimPrefix(n, "@")
		u, err := c.UserByUsername(ctx, n)
		if err != nil {
			if client.IsNotFound(err) {
				return nil, fmt.Errorf("no user named %q", n)
			}
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}
