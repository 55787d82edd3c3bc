package gateway

// Online reports whether the user has an open socket on this node. With
// several nodes each answers for its own sockets only.
func (g *Gateway) Online(userID string) bool {
	h := g.hub
	h.mu.RLock()
	defer h.mu.RUnlock()
	uc := h.users[userID]
	return uc != nil && len(uc.conns) > 0
}

// DeviceOnline reports whether the device has an open socket on this node.
func (g *Gateway) DeviceOnline(userID, deviceID string) bool {
	h := g.hub
	h.mu.RLock()
	defer h.mu.RUnlock()
	uc := h.users[userID]
	if uc == nil {
		return false
	}
	for c := range uc.conns {
		if c.sess.DeviceID == deviceID {
			return true
		}
	}
	return false
}
