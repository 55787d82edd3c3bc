package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/parley-chat/parley/client"
)

func Example() {
	ctx := context.Background()
	sess, err := client.Login(ctx, "http://localhost:8080", client.LoginRequest{Username: "alice", Password: "correct horse"})
	if err != nil {
		log.Fatal(err)
	}
	c := client.New(client.Config{
		URLs:          []string{"http://localhost:8080"},
		Token:         sess.Token,
		AutoDelivered: true,
	})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		if err := c.Run(runCtx); client.IsSessionExpired(err) {
			log.Print("session expired: log in again")
		}
	}()
	go func() {
		for ev := range c.Events() {
			if ev.Kind == client.EventMessage {
				fmt.Printf("#%d <%s> %s\n", ev.Message.Seq, ev.Message.SenderID, ev.Message.Content)
			}
		}
	}()

	bob, err := c.UserByUsername(ctx, "bob")
	if err != nil {
		log.Fatal(err)
	}
	conv, err := c.CreateDirect(ctx, bob.UserID)
	if err != nil {
		log.Fatal(err)
	}
	ack, err := c.Send(ctx, conv.ConversationID, "hello bob")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored as seq", ack.Seq)
}

func ExampleClient_History() {
	ctx := context.Background()
	c := client.New(client.Config{URLs: []string{"http://localhost:8080"}, Token: "…"})
	// Page backwards through a conversation, newest first.
	before := int64(0)
	for {
		page, err := c.History(ctx, "conversation-id", client.HistoryQuery{Before: before, Limit: 100})
		if err != nil {
			log.Fatal(err)
		}
		for _, m := range page.Messages {
			fmt.Println(m.Seq, m.Content)
		}
		if !page.HasMore || len(page.Messages) == 0 {
			break
		}
		before = page.Messages[len(page.Messages)-1].Seq
	}
}
