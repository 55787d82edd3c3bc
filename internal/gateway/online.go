package gateway

// Online reports whether the user has an open socket: on this node, or in
// a cluster on any node (as the session registry last told this node).
func (g *Gateway) Online(userID string) bool {
	h := g.hub
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.live(userID, h.presence[userID])
}

// DeviceOnline reports whether the device has an open socket: on this node,
// or in a cluster on any node (asking the session registry).
func (g *Gateway) DeviceOnline(userID, deviceID string) bool {
	h := g.hub
	h.mu.RLock()
	uc := h.users[userID]
	local := uc != nil && uc.hasDevice(deviceID)
	c := h.cluster
	h.mu.RUnlock()
	if local || c == nil {
		return local
	}
	_, ok := c.devices(userID)[deviceID]
	return ok
}
