package chat

import "context"

// SafetyStore holds what users and operators use against abuse: blocks
// between users, reports of messages, and suspended accounts. It is an
// optional ability of a Store (both bundled stores have it); without it
// blocking, reporting and suspension answer 503. Every implementation
// passes storetest.RunSafetyStore.
type SafetyStore interface {
	// Block records that blocker blocks blocked; blocking again changes
	// nothing. ErrNotFound if either user does not exist.
	Block(ctx context.Context, blocker, blocked string, at int64) error
	// Unblock removes the block; removing a missing one is not an error.
	Unblock(ctx context.Context, blocker, blocked string) error
	// Blocks lists the users blocker blocks, oldest block first.
	Blocks(ctx context.Context, blocker string) ([]string, error)
	// BlockedAmong returns those of others that userID blocks or that
	// block userID (either way), in no particular order.
	BlockedAmong(ctx context.Context, userID string, others []string) ([]string, error)
	// BlockersAmong returns those of others that block userID.
	BlockersAmong(ctx context.Context, userID string, others []string) ([]string, error)
	// DirectBlocked says whether conversationID is a direct conversation
	// whose two members are in a block (either way).
	DirectBlocked(ctx context.Context, conversationID string) (bool, error)
	// SharingWith returns those of others that are a member now of at
	// least one conversation userID is a member of, in no particular order.
	SharingWith(ctx context.Context, userID string, others []string) ([]string, error)

	// MediaBytes is the total size of the media userID uploaded that is
	// not deleted (the media quota).
	MediaBytes(ctx context.Context, userID string) (int64, error)

	// KeyBundles returns the key bundles of userID's devices like
	// KeyStore.ClaimKeys, but claims no one-time prekey (OneTimePreKey nil):
	// what a claimer past the per-target rate gets.
	KeyBundles(ctx context.Context, userID string) ([]KeyBundle, error)

	// CreateInvite stores an invitation by the hash of its token.
	CreateInvite(ctx context.Context, tokenHash string, createdAt, expiresAt int64) error
	// UseInvite deletes an invitation that expires after now and reports
	// whether there was one (false: unknown, used or expired).
	UseInvite(ctx context.Context, tokenHash string, now int64) (bool, error)

	// CreateReport stores a report; ErrConflict if its id is taken.
	CreateReport(ctx context.Context, r Report) error
	// Reports lists reports, oldest first: only open ones unless all.
	Reports(ctx context.Context, all bool, limit int) ([]Report, error)
	// ResolveReport marks a report resolved; ErrNotFound.
	ResolveReport(ctx context.Context, id, resolution string, at int64) error

	// Suspend marks a user suspended and deletes all of its sessions in
	// the same transaction; ErrNotFound for an unknown user.
	Suspend(ctx context.Context, userID, reason string, at int64) error
	// Unsuspend lifts a suspension; lifting none is not an error.
	Unsuspend(ctx context.Context, userID string) error
	// SuspendedSince lists the users suspended at or after since (ms).
	SuspendedSince(ctx context.Context, since int64) ([]string, error)
	// Suspended says whether the user is suspended.
	Suspended(ctx context.Context, userID string) (bool, error)
}

// Report is a user's report of a message to the server's operators.
type Report struct {
	ID             string
	ReporterID     string
	ConversationID string
	Seq            int64
	Reason         string
	CreatedAt      int64
	ResolvedAt     int64  // 0 while open
	Resolution     string // the operator's note
}
