package main

import (
	"flag"
	"strings"

	"github.com/parley-chat/parley/internal/push"
)

// pushFlags registers the push notification flags (docs/push.md).
func pushFlags(fs *flag.FlagSet, c *push.Config) {
	fs.DurationVar(&c.Window, "push-window", c.Window, "at most one push notification per conversation per window; messages within it are collapsed into the next one (\"Alice sent you 5 messages\")")
	fs.StringVar(&c.VAPIDSubject, "vapid-subject", c.VAPIDSubject, "contact for Web Push services, a mailto: or https: URL (RFC 8292 sub); Apple's Web Push requires one")
	fs.StringVar(&c.VAPIDKeyFile, "vapid-key-file", c.VAPIDKeyFile, "the VAPID key (PEM), generated there on first start if missing; default <data-dir>/vapid.key. Every node of a cluster must use the same key: copy the file to each node and point this flag at it")
	fs.StringVar(&c.APNs.KeyFile, "apns-key-file", c.APNs.KeyFile, "APNs token-based auth key (.p8) from the Apple developer account; with --apns-key-id, --apns-team-id and --apns-topic it enables APNs")
	fs.StringVar(&c.APNs.KeyID, "apns-key-id", c.APNs.KeyID, "APNs key id (the 10 characters of the .p8's name)")
	fs.StringVar(&c.APNs.TeamID, "apns-team-id", c.APNs.TeamID, "Apple developer team id")
	fs.StringVar(&c.APNs.Topic, "apns-topic", c.APNs.Topic, "the iOS app's bundle id")
	fs.StringVar(&c.APNs.Endpoint, "apns-endpoint", c.APNs.Endpoint, "APNs provider API; https://api.sandbox.push.apple.com for development builds (tests point it at a local server)")
	fs.StringVar(&c.FCM.CredentialsFile, "fcm-credentials", c.FCM.CredentialsFile, "Firebase service-account JSON key file; enables FCM (HTTP v1)")
	fs.StringVar(&c.FCM.Endpoint, "fcm-endpoint", c.FCM.Endpoint, "FCM API base URL (test only: a local stand-in)")
	fs.StringVar(&c.CAFile, "push-ca-file", c.CAFile, "extra PEM CA certificates trusted for push connections, e.g. a self-hosted UnifiedPush server with a private CA (tests use it for local stand-ins)")
	fs.Func("push-allowed-hosts", "comma-separated hosts (exact, or *.example.com) Web Push and UnifiedPush endpoints may name, e.g. \"fcm.googleapis.com,*.push.services.mozilla.com,*.notify.windows.com,web.push.apple.com,ntfy.example.org\"; empty (the default) allows any host on a public address", func(v string) error {
		c.AllowedHosts = nil
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				c.AllowedHosts = append(c.AllowedHosts, h)
			}
		}
		return nil
	})
	fs.BoolVar(&c.AllowLoopback, "push-allow-loopback", c.AllowLoopback, "test only: accept Web Push and UnifiedPush endpoints on loopback addresses, plain http included")
}
