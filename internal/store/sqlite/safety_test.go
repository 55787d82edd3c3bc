package sqlite_test

import (
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store/sqlite"
	"github.com/parley-chat/parley/internal/store/storetest"
)

func TestSafetyStoreConformance(t *testing.T) {
	storetest.RunSafetyStore(t, func(t *testing.T) chat.Store {
		s, _ := openTemp(t, sqlite.Options{})
		return s
	})
}
