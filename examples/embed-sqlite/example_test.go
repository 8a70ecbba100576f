package main

import (
	"os"
	"testing"
)

// srcDir is the package's directory, the working directory at start.
var srcDir string

// TestMain runs the example in a directory of its own: it creates
// callready.db in the working directory.
func TestMain(m *testing.M) {
	var err error
	if srcDir, err = os.Getwd(); err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "callready-embed-sqlite")
	if err != nil {
		panic(err)
	}
	if err := os.Chdir(dir); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Example runs the README's SQLite program as written.
func Example() {
	main()
	// Output:
	// 34612345678 permanent request
}
