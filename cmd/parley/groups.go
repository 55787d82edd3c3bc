package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/parley-chat/parley/client"
)

var groupsCmd = &command{
	name:     "groups",
	synopsis: "create <name> [username...] | add <group-id> <username...> | remove <group-id> <username...> | rename <group-id> <name>",
	summary:  "create groups, add and remove members, rename",
	help: `Manages groups:

  parley groups create <name> [username...]    create a group; you are its admin
  parley groups add <group-id> <username...>   add members (admins only)
  parley groups remove <group-id> <username...>
                                                remove members (admins), or
                                                yourself (leave the group)
  parley groups rename <group-id> <name>       rename (admins only)

Usernames may be written with or without a leading @. A group id may be
shortened to a unique suffix, as 'parley listen' shows it. Quote a name that
has spaces, or write it as several words.`,
	run: runGroups,
}

func runGroups(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.newFlagSet(cmd)
	args, err := a.parse(fs, args, -1)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return usagef(cmd.name, "missing the subcommand: create, add, remove or rename")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "create":
		if len(args) < 1 {
			return usagef(cmd.name, "create needs a group name")
		}
	case "add", "remove":
		if len(args) < 2 {
			return usagef(cmd.name, "%s needs a group id and at least one username", sub)
		}
	case "rename":
		if len(args) < 2 {
			return usagef(cmd.name, "rename needs a group id and a name")
		}
	default:
		return usagef(cmd.name, "unknown subcommand %q: use create, add, remove or rename", sub)
	}
	c, err := a.session(nil)
	if err != nil {
		return err
	}
	names := newNameCache(c, a.cfg)
	switch sub {
	case "create":
		users, err := resolveUsers(ctx, c, args[1:])
		if err != nil {
			return err
		}
		ids := make([]string, len(users))
		for i, u := range users {
			ids[i] = u.UserID
			names.names[u.UserID] = u.Username
		}
		g, err := c.CreateGroup(ctx, args[0], ids)
		if err != nil {
			return err
		}
		a.printGroup(ctx, names, "created", &g)
	case "add":
		gid, err := resolveConversation(ctx, c, args[0])
		if err != nil {
			return err
		}
		users, err := resolveUsers(ctx, c, args[1:])
		if err != nil {
			return err
		}
		ids := make([]string, len(users))
		for i, u := range users {
			ids[i] = u.UserID
			names.names[u.UserID] = u.Username
		}
		g, err := c.AddMembers(ctx, gid, ids...)
		if err != nil {
			return err
		}
		a.printGroup(ctx, names, "updated", &g)
	case "remove":
		gid, err := resolveConversation(ctx, c, args[0])
		if err != nil {
			return err
		}
		users, err := resolveUsers(ctx, c, args[1:])
		if err != nil {
			return err
		}
		for _, u := range users {
			if err := c.RemoveMember(ctx, gid, u.UserID); err != nil {
				return fmt.Errorf("remove %s: %w", u.Username, err)
			}
			fmt.Fprintf(a.stdout, "removed %s from %s\n", u.Username, gid)
		}
	case "rename":
		gid, err := resolveConversation(ctx, c, args[0])
		if err != nil {
			return err
		}
		g, err := c.RenameGroup(ctx, gid, strings.Join(args[1:], " "))
		if err != nil {
			return err
		}
		a.printGroup(ctx, names, "renamed", &g)
	}
	return nil
}

func (a *app) printGroup(ctx context.Context, names *nameCache, what string, g *client.Conversation) {
	members := make([]string, 0, len(g.Members))
	for _, m := range g.Members {
		s := names.get(ctx, m.UserID)
		if m.Role == client.RoleAdmin {
			s += " (admin)"
		}
		members = append(members, s)
	}
	fmt.Fprintf(a.stdout, "%s group %s %q: %s\n", what, g.ConversationID, g.Name, strings.Join(members, ", "))
}
