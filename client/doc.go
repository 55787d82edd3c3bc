// Package client is the Go SDK of Parley, a self-hostable real-time chat
// server. It speaks only the public wire protocol: REST under /api/v1 and the
// WebSocket at /api/v1/ws.
//
// A Client keeps one WebSocket connected while Run runs: it waits for the
// server's ready frame, sends sync with its cursors after every
// (re)connect, pings every heartbeat interval, and reconnects with
// exponential backoff and full jitter, trying the next of its URLs each time.
// It stops when the context ends or the session expires (401, error 440,
// close code 4440).
//
// Messages reach the app through Events exactly once and in seq order per
// conversation: duplicates (a sync overlapping a live push, a retried send)
// are dropped by seq, messages that arrive ahead of a gap are held back while
// the gap is filled over REST (GET .../messages?after=S), and conversations
// that sync reports as truncated are filled the same way. Send retries with
// the same client message id until the server acknowledges it, so a message
// is stored once however often it was sent.
//
// Usage:
//
//	ctx := context.Background()
//	sess, err := client.Login(ctx, "http://localhost:8080", client.LoginRequest{
//		Username: "alice", Password: "correct horse",
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	c := client.New(client.Config{
//		URLs:          []string{"http://localhost:8080"},
//		Token:         sess.Token,
//		AutoDelivered: true,
//	})
//	go func() {
//		for ev := range c.Events() {
//			switch ev.Kind {
//			case client.EventMessage:
//				fmt.Printf("%s: %s\n", ev.Message.SenderID, ev.Message.Content)
//			case client.EventExpired:
//				log.Print("session expired, log in again")
//			}
//		}
//	}()
//	runCtx, stop := context.WithCancel(ctx)
//	defer stop()
//	go c.Run(runCtx)
//
//	bob, err := c.UserByUsername(ctx, "bob")
//	if err != nil {
//		log.Fatal(err)
//	}
//	conv, err := c.CreateDirect(ctx, bob.UserID)
//	if err != nil {
//		log.Fatal(err)
//	}
//	ack, err := c.Send(ctx, conv.ConversationID, "hello bob")
//	if client.IsRateLimited(err) {
//		// only when ctx ended while waiting out the limit
//	}
//	fmt.Println("stored as seq", ack.Seq)
//
// Errors answered by the server, over REST or as WebSocket error frames, are
// *APIError values; errors.Is matches them against ErrNotFound,
// ErrForbidden, ErrRateLimited and the other sentinels of their status.
package client
