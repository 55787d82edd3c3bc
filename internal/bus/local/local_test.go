package local_test

import (
	"testing"

	"github.com/parley-chat/parley/internal/bus/bustest"
	"github.com/parley-chat/parley/internal/bus/local"
	"github.com/parley-chat/parley/internal/chat"
)

func TestConformance(t *testing.T) {
	shared := local.New() // every "instance" is the same process-wide fabric
	bustest.Run(t, func(t *testing.T) chat.Bus { return shared })
}
