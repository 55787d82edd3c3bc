package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// Resumable uploads in a cluster: an upload's bytes so far live on the node
// that created it. When that node advertises a URL (--advertise-url), the
// upload's id carries the node, "<id>.<node>", and any other node that gets
// a request for it forwards the request there, streaming, so a client
// behind a load balancer can continue an upload through whichever node it
// reaches. If the holding node is gone, the answer is 404 and the client
// starts the upload again.

// headerForwarded marks a request one node forwarded to another; such a
// request is never forwarded again.
const headerForwarded = "Parley-Forwarded-By"

// uploadID is the id clients see for a local upload.
func (g *Gateway) uploadID(local string) string {
	if c := g.routing(); c != nil {
		return local + "." + c.token
	}
	return local
}

// routing returns the cluster when uploads are routed between nodes.
func (g *Gateway) routing() *cluster {
	g.hub.mu.RLock()
	defer g.hub.mu.RUnlock()
	if c := g.hub.cluster; c != nil && c.nodes != nil {
		return c
	}
	return nil
}

// routeUpload wraps a handler of /api/v1/uploads/{id}: an upload of this
// node goes to h with its local id; one of another node is forwarded there.
func (g *Gateway) routeUpload(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		local, node, routed := strings.Cut(r.PathValue("id"), ".")
		c := g.routing()
		switch {
		case !routed:
		case c != nil && node == c.token:
			r.SetPathValue("id", local)
		case c == nil || r.Header.Get(headerForwarded) != "":
			tusHeaders(w)
			g.writeError(w, r, fmt.Errorf("%w: no upload %q on this node", chat.ErrNotFound, r.PathValue("id")))
			return
		default:
			g.forwardUpload(w, r, c, node)
			return
		}
		h(w, r)
	}
}

// forwardUpload hands the request to the node holding the upload and
// streams its answer back.
func (g *Gateway) forwardUpload(w http.ResponseWriter, r *http.Request, c *cluster, node string) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	base, err := c.nodes.NodeURL(ctx, node)
	cancel()
	if err == nil {
		_, err = url.Parse(base)
	}
	if err != nil {
		tusHeaders(w)
		if errors.Is(err, chat.ErrNotFound) {
			err = fmt.Errorf("%w: the node holding upload %q is gone: start the upload again", chat.ErrNotFound, r.PathValue("id"))
		}
		g.writeError(w, r, err)
		return
	}
	target, _ := url.Parse(base)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Header.Set(headerForwarded, c.token)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.log.Warn("forwarding an upload request", "node", node, "err", err)
			tusHeaders(w)
			writeJSONError(w, http.StatusBadGateway, "unavailable", "the node holding this upload did not answer: retry, or start the upload again")
		},
	}
	g.metrics.UploadsForwarded.Inc()
	proxy.ServeHTTP(w, r)
}
