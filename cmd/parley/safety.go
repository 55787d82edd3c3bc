package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/parley-chat/parley/client"
)

var blocksCmd = &command{
	name:     "blocks",
	synopsis: "[list] | add <username...> | remove <username...>",
	summary:  "block and unblock users, list whom you block",
	help: `Blocks users. A blocked user and you can no longer open a direct conversation,
send each other direct messages, see each other's presence or typing; the
blocked user cannot add you to a group. Their messages in groups you share are
hidden by the clients ('parley listen' drops them).

  parley blocks                      list the users you block
  parley blocks add <username...>    block
  parley blocks remove <username...> unblock`,
	run: runBlocks,
}

var reportCmd = &command{
	name:     "report",
	synopsis: "<conversation> <seq> <reason...>",
	summary:  "report a message to the server's operators",
	help: `Reports message <seq> of a conversation (an id or unique suffix, as
'parley conversations' shows it, or @username for a direct conversation)
to the server's operators, with a reason.`,
	run: runReport,
}

func runBlocks(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.newFlagSet(cmd)
	args, err := a.parse(fs, args, -1)
	if err != nil {
		return err
	}
	sub := "list"
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	if (sub == "add" || sub == "remove") && len(args) == 0 {
		return usagef(cmd.name, "%s needs at least one username", sub)
	}
	if sub != "list" && sub != "add" && sub != "remove" {
		return usagef(cmd.name, "unknown subcommand %q: use list, add or remove", sub)
	}
	c, err := a.session(nil)
	if err != nil {
		return err
	}
	if sub == "list" {
		ids, err := c.Blocks(ctx)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			fmt.Fprintln(a.stderr, "(you block nobody)")
		}
		names := newNameCache(c, a.cfg)
		for _, id := range ids {
			fmt.Fprintf(a.stdout, "@%s\t%s\n", names.get(ctx, id), id)
		}
		return nil
	}
	users, err := resolveUsers(ctx, c, args)
	if err != nil {
		return err
	}
	for _, u := range users {
		if sub == "add" {
			err = c.Block(ctx, u.UserID)
		} else {
			err = c.Unblock(ctx, u.UserID)
		}
		if err != nil {
			return err
		}
		verb := map[string]string{"add": "blocked", "remove": "unblocked"}[sub]
		fmt.Fprintf(a.stdout, "%s @%s\n", verb, sanitize(u.Username))
	}
	return nil
}

// blockedSet is the users the caller blocks, whose group messages the CLI
// hides (empty if the server cannot say).
func blockedSet(ctx context.Context, c *client.Client) map[string]bool {
	ids, _ := c.Blocks(ctx)
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

func runReport(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.newFlagSet(cmd)
	args, err := a.parse(fs, args, -1)
	if err != nil {
		return err
	}
	if len(args) < 3 {
		return usagef(cmd.name, "needs a conversation, a seq and a reason")
	}
	seq, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || seq < 1 {
		return usagef(cmd.name, "seq must be a positive integer, not %q", args[1])
	}
	c, err := a.session(nil)
	if err != nil {
		return err
	}
	convID, err := resolveConversation(ctx, c, args[0])
	if err != nil {
		return err
	}
	id, err := c.Report(ctx, convID, seq, strings.Join(args[2:], " "))
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "reported message #%d of %s (report %s)\n", seq, convID, id)
	return nil
}
