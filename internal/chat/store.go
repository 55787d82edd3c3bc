package chat

import "context"

// Store is durable storage. Every implementation passes the conformance suite in
// internal/store/storetest. Methods return the sentinel errors of this package
// (ErrNotFound, ErrConflict, ErrForbidden, ErrInvalid) wrapped with %w, and
// ErrUnavailable when the backend cannot be reached.
type Store interface {
	// CreateUser stores a new user; ErrConflict if the username is taken.
	CreateUser(ctx context.Context, u User, passwordHash []byte) error
	// User returns a user by id; ErrNotFound.
	User(ctx context.Context, id string) (User, error)
	// UserByUsername returns a user and its password hash; ErrNotFound.
	UserByUsername(ctx context.Context, username string) (User, []byte, error)
	// SetLastSeen records when the user's last device went away.
	SetLastSeen(ctx context.Context, userID string, at int64) error

	// CreateDevice stores a new device of d.UserID.
	CreateDevice(ctx context.Context, d Device) error
	// Device returns a device by id; ErrNotFound.
	Device(ctx context.Context, id string) (Device, error)
	// Devices lists a user's devices, oldest first.
	Devices(ctx context.Context, userID string) ([]Device, error)
	// TouchDevice sets a device's last_seen.
	TouchDevice(ctx context.Context, deviceID string, at int64) error
	// TouchDevices sets the last_seen of several devices in one transaction
	// (never lowering it); unknown devices are skipped.
	TouchDevices(ctx context.Context, seen map[string]int64) error

	// CreateSession stores a session keyed by its token hash.
	CreateSession(ctx context.Context, s Session) error
	// Session returns the session of a token hash; ErrNotFound.
	Session(ctx context.Context, tokenHash string) (Session, error)
	// DeleteSession revokes one token. Deleting a missing one is not an error.
	DeleteSession(ctx context.Context, tokenHash string) error
	// DeleteDeviceSessions revokes every token of a device.
	DeleteDeviceSessions(ctx context.Context, deviceID string) error

	// DirectConversation returns the direct conversation between the two members
	// of c, creating it from c (id, timestamps, both members) if there is none.
	// created tells which happened. The same unordered pair always gets the same
	// conversation, also under concurrent calls.
	DirectConversation(ctx context.Context, c Conversation) (conv Conversation, created bool, err error)
	// CreateGroup stores a new group conversation with its members.
	CreateGroup(ctx context.Context, c Conversation) error
	// Conversation returns a conversation with its members and last message;
	// ErrNotFound.
	Conversation(ctx context.Context, id string) (Conversation, error)
	// Conversations lists userID's conversations with members and last message,
	// most recently updated first, with UnreadCount computed for userID.
	Conversations(ctx context.Context, userID string) ([]Conversation, error)
	// UnreadCount is last_seq minus userID's read_seq, not counting userID's
	// own messages after read_seq (0 for a non-member).
	UnreadCount(ctx context.Context, conversationID, userID string) (int64, error)
	// Cursors lists the conversations userID is a member of with their last seq.
	Cursors(ctx context.Context, userID string) ([]ConversationCursor, error)
	// Member returns userID's membership of a conversation; ErrNotFound if the
	// conversation does not exist, ErrForbidden if userID is not a member.
	Member(ctx context.Context, conversationID, userID string) (Member, error)
	// AddMembers adds members (skipping existing ones) unless the conversation
	// would then have more than maxMembers members (ErrInvalid). Their
	// watermarks are capped at the conversation's last seq. It sets
	// updated_at to now.
	AddMembers(ctx context.Context, conversationID string, members []Member, maxMembers int, now int64) error
	// RemoveMember removes a member (ErrNotFound if not a member). If the last
	// admin leaves a group that still has members, the longest-standing member
	// becomes admin.
	RemoveMember(ctx context.Context, conversationID, userID string, now int64) error
	// RenameConversation sets a conversation's name and updated_at.
	RenameConversation(ctx context.Context, conversationID, name string, now int64) error

	// AppendBatch stores messages in one transaction (group commit) and returns
	// one result per message, in order. For each message, inside the
	// transaction: if the sender already stored a message with the same
	// ClientID, the stored message is returned with Duplicate set and nothing
	// is written; else the conversation must exist (ErrNotFound) and the sender
	// must be a member (ErrForbidden); the message gets the conversation's next
	// seq (gapless, starting at 1) and is stored; the conversation's updated_at
	// becomes the message timestamp. Recipients are the members at that moment.
	// A failing message does not fail the others. The returned error is for
	// the whole batch (nothing stored, e.g. ErrUnavailable).
	AppendBatch(ctx context.Context, msgs []Message) ([]AppendResult, error)
	// Messages returns a page of a conversation's history (see Page) and
	// whether more messages lie beyond it in the paging direction.
	Messages(ctx context.Context, conversationID string, p Page) ([]Message, bool, error)
	// UpdateWatermarks raises receipt watermarks (never lowers them; read
	// implies delivered; capped at the conversation's last seq) for members
	// only, in one transaction, and returns the watermarks that moved, with
	// their new values.
	UpdateWatermarks(ctx context.Context, w []Watermark) ([]Watermark, error)

	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// AppendResult is the outcome of one message of AppendBatch.
type AppendResult struct {
	Message    Message  // as stored (the original one for a duplicate)
	Duplicate  bool     // the ClientID was seen before; nothing was written
	Recipients []string // member user ids at commit time (not for duplicates)
	Err        error
}
