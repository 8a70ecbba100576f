package memory_test

import (
	"testing"

	"github.com/callready/callready/store"
	"github.com/callready/callready/store/memory"
	"github.com/callready/callready/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := memory.New(memory.Config{})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestCompaction(t *testing.T) {
	storetest.RunCompaction(t, 16, func(t *testing.T) store.Store {
		return memory.New(memory.Config{Retention: 16})
	})
}
