package chat

import (
	"context"
	"errors"
	"math"
	"strings"
	"unicode/utf8"
)

// MaxGroupNameLen is the longest group name, in characters.
const MaxGroupNameLen = 128

// Conversation changes announced in conversation_updated.
const (
	ChangeCreated       = "created"
	ChangeMemberAdded   = "member_added"
	ChangeMemberRemoved = "member_removed"
	ChangeRenamed       = "renamed"
)

// OpenDirect returns the direct conversation between the caller and other,
// creating it on first use.
func (s *Service) OpenDirect(ctx context.Context, sess Session, other string) (Conversation, bool, error) {
	if other == "" {
		return Conversation{}, false, errf(ErrBadRequest, "user_id is required")
	}
	if other == sess.UserID {
		return Conversation{}, false, errf(ErrInvalid, "a direct conversation needs another user")
	}
	if _, err := s.User(ctx, other); err != nil {
		return Conversation{}, false, err
	}
	if blocked, err := s.blockedWith(ctx, sess.UserID, []string{other}); err != nil {
		return Conversation{}, false, err
	} else if blocked[other] {
		return Conversation{}, false, errf(ErrBlocked, "a block stands between you and this user")
	}
	now := s.now()
	ms := now.UnixMilli()
	c := Conversation{ID: s.ids.New(now), Type: TypeDirect, CreatedAt: ms, UpdatedAt: ms, Members: []Member{
		{UserID: sess.UserID, Role: RoleMember, JoinedAt: ms},
		{UserID: other, Role: RoleMember, JoinedAt: ms},
	}}
	conv, created, err := s.store.DirectConversation(ctx, c)
	if err != nil {
		return Conversation{}, false, err
	}
	if created {
		s.announce(ctx, ChangeCreated, conv, nil)
	}
	conv, err = s.forUser(ctx, conv, sess.UserID)
	return conv, created, err
}

// Conversations lists the caller's conversations, most recently active first.
func (s *Service) Conversations(ctx context.Context, sess Session) ([]Conversation, error) {
	return s.store.Conversations(ctx, sess.UserID)
}

// Conversation returns one conversation the caller is a member of.
func (s *Service) Conversation(ctx context.Context, sess Session, id string) (Conversation, error) {
	conv, err := s.memberConversation(ctx, sess.UserID, id)
	if err != nil {
		return Conversation{}, err
	}
	return s.forUser(ctx, conv, sess.UserID)
}

// forUser fills the per-user fields (UnreadCount) of a conversation.
func (s *Service) forUser(ctx context.Context, conv Conversation, userID string) (Conversation, error) {
	n, err := s.store.UnreadCount(ctx, conv.ID, userID)
	if err != nil {
		return Conversation{}, err
	}
	conv.UnreadCount = n
	return conv, nil
}

// memberConversation loads a conversation and checks that userID is a member.
func (s *Service) memberConversation(ctx context.Context, userID, id string) (Conversation, error) {
	conv, err := s.store.Conversation(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Conversation{}, errf(ErrNotFound, "no conversation %q", id)
	}
	if err != nil {
		return Conversation{}, err
	}
	if _, ok := conv.Member(userID); !ok {
		return Conversation{}, errf(ErrForbidden, "not a member of this conversation")
	}
	return conv, nil
}

// group loads a group the caller belongs to; adminOnly also requires the admin role.
func (s *Service) group(ctx context.Context, userID, id string, adminOnly bool) (Conversation, error) {
	conv, err := s.memberConversation(ctx, userID, id)
	if err != nil {
		return Conversation{}, err
	}
	if conv.Type != TypeGroup {
		return Conversation{}, errf(ErrNotFound, "conversation %q is not a group", id)
	}
	if m, _ := conv.Member(userID); adminOnly && m.Role != RoleAdmin {
		return Conversation{}, errf(ErrForbidden, "only a group admin may do this")
	}
	return conv, nil
}

// CreateGroup creates a group with the caller as admin.
func (s *Service) CreateGroup(ctx context.Context, sess Session, name string, memberIDs []string) (Conversation, error) {
	name, err := checkGroupName(name)
	if err != nil {
		return Conversation{}, err
	}
	ids, err := s.existingUsers(ctx, memberIDs, sess.UserID)
	if err != nil {
		return Conversation{}, err
	}
	if 1+len(ids) > s.cfg.MaxGroupMembers {
		return Conversation{}, errf(ErrInvalid, "a group has at most %d members", s.cfg.MaxGroupMembers)
	}
	if err := s.checkNotBlockers(ctx, sess.UserID, ids); err != nil {
		return Conversation{}, err
	}
	now := s.now()
	ms := now.UnixMilli()
	conv := Conversation{ID: s.ids.New(now), Type: TypeGroup, Name: name, CreatedAt: ms, UpdatedAt: ms}
	conv.Members = append(conv.Members, Member{UserID: sess.UserID, Role: RoleAdmin, JoinedAt: ms})
	for _, id := range ids {
		conv.Members = append(conv.Members, Member{UserID: id, Role: RoleMember, JoinedAt: ms})
	}
	if err := s.store.CreateGroup(ctx, conv); err != nil {
		return Conversation{}, err
	}
	s.announce(ctx, ChangeCreated, conv, nil)
	return conv, nil
}

// AddMembers adds users to a group; admins only.
func (s *Service) AddMembers(ctx context.Context, sess Session, groupID string, userIDs []string) (Conversation, error) {
	if len(userIDs) == 0 {
		return Conversation{}, errf(ErrBadRequest, "user_ids is required")
	}
	if _, err := s.group(ctx, sess.UserID, groupID, true); err != nil {
		return Conversation{}, err
	}
	ids, err := s.existingUsers(ctx, userIDs, "")
	if err != nil {
		return Conversation{}, err
	}
	if err := s.checkNotBlockers(ctx, sess.UserID, ids); err != nil {
		return Conversation{}, err
	}
	ms := s.now().UnixMilli()
	members := make([]Member, len(ids))
	for i, id := range ids {
		// A new member starts with everything before it joined read: the
		// store caps watermarks at the conversation's last seq.
		members[i] = Member{UserID: id, Role: RoleMember, JoinedAt: ms, DeliveredSeq: math.MaxInt64, ReadSeq: math.MaxInt64}
	}
	if err := s.store.AddMembers(ctx, groupID, members, s.cfg.MaxGroupMembers, ms); err != nil {
		if errors.Is(err, ErrInvalid) {
			return Conversation{}, errf(ErrInvalid, "a group has at most %d members", s.cfg.MaxGroupMembers)
		}
		return Conversation{}, err
	}
	conv, err := s.store.Conversation(ctx, groupID)
	if err != nil {
		return Conversation{}, err
	}
	s.announce(ctx, ChangeMemberAdded, conv, ids)
	return s.forUser(ctx, conv, sess.UserID)
}

// RemoveMember removes target from a group: admins remove anyone, anyone
// removes itself (leaves).
func (s *Service) RemoveMember(ctx context.Context, sess Session, groupID, target string) error {
	conv, err := s.group(ctx, sess.UserID, groupID, false)
	if err != nil {
		return err
	}
	if me, _ := conv.Member(sess.UserID); target != sess.UserID && me.Role != RoleAdmin {
		return errf(ErrForbidden, "only a group admin may remove others")
	}
	if _, ok := conv.Member(target); !ok {
		return errf(ErrNotFound, "user %q is not a member", target)
	}
	if err := s.store.RemoveMember(ctx, groupID, target, s.now().UnixMilli()); err != nil {
		return err
	}
	after, err := s.store.Conversation(ctx, groupID)
	if err != nil {
		return err
	}
	s.announce(ctx, ChangeMemberRemoved, after, []string{target})
	return nil
}

// RenameGroup renames a group; admins only.
func (s *Service) RenameGroup(ctx context.Context, sess Session, groupID, name string) (Conversation, error) {
	name, err := checkGroupName(name)
	if err != nil {
		return Conversation{}, err
	}
	if _, err := s.group(ctx, sess.UserID, groupID, true); err != nil {
		return Conversation{}, err
	}
	if err := s.store.RenameConversation(ctx, groupID, name, s.now().UnixMilli()); err != nil {
		return Conversation{}, err
	}
	conv, err := s.store.Conversation(ctx, groupID)
	if err != nil {
		return Conversation{}, err
	}
	s.announce(ctx, ChangeRenamed, conv, nil)
	return s.forUser(ctx, conv, sess.UserID)
}

// announce sends conversation_updated to every member, and to the removed
// users (a removed member learns that it was removed); users are the
// members added or removed by the change.
//
// A fan-out-on-read conversation instead gets one small MembersChange on
// ChannelTopic: every node updates its member set, and tells its own
// sockets of the users concerned (every member for created and renamed,
// the added or removed users for the others), loading the conversation for
// the frame only when it has someone to tell. The other members of a
// channel are not told of each join and leave.
func (s *Service) announce(ctx context.Context, change string, conv Conversation, users []string) {
	ids := conv.MemberIDs()
	if s.fanoutOnRead(len(ids)) {
		s.large.note(conv.ID, true)
		aud := AudienceOf(ids)
		s.publishChannel(ctx, &Event{Kind: EventMembers, Audience: &aud, Members: &MembersChange{
			ConversationID: conv.ID, Change: change, Users: users, LastSeq: conv.LastSeq,
		}})
		return
	}
	if change == ChangeMemberRemoved {
		ids = append(ids, users...)
	}
	ev := &Event{Kind: EventConversation, Conversation: &ConversationChange{Change: change, Conversation: conv}}
	s.publishTo(ctx, ids, ev)
}

// existingUsers dedupes ids, drops skip, and checks that each user exists.
func (s *Service) existingUsers(ctx context.Context, ids []string, skip string) ([]string, error) {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id == "" || id == skip || seen[id] {
			continue
		}
		seen[id] = true
		if len(seen) > s.cfg.MaxGroupMembers {
			return nil, errf(ErrInvalid, "a group has at most %d members", s.cfg.MaxGroupMembers)
		}
		if _, err := s.User(ctx, id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

func checkGroupName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", errf(ErrBadRequest, "name is required")
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxGroupNameLen {
		return "", errf(ErrInvalid, "name must be valid UTF-8 of at most %d characters", MaxGroupNameLen)
	}
	if err := CheckName("name", name); err != nil {
		return "", err
	}
	return name, nil
}
