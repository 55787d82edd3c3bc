package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: the test's end and the end a child
// process gets as its terminal.
func openPTY(t *testing.T) (ours, theirs *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pts: %v", err)
	}
	t.Cleanup(func() { _ = m.Close(); _ = s.Close() })
	return m, s
}

// TestPasswordPromptHelper is the child of TestPasswordNotEchoed: it reads a
// password as the CLI does, from a terminal.
func TestPasswordPromptHelper(t *testing.T) {
	if os.Getenv("PARLEY_PASSWORD_HELPER") == "" {
		t.Skip("run by TestPasswordNotEchoed")
	}
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stdout, getenv: func(string) string { return "" }}
	pw, err := a.readPassword(false, "Password for alice: ")
	if err != nil {
		fmt.Printf("ERROR %v\n", err)
		return
	}
	fmt.Printf("GOT[%s]\n", pw)
}

// On a terminal the password prompt does not echo what is typed.
func TestPasswordNotEchoed(t *testing.T) {
	ours, theirs := openPTY(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestPasswordPromptHelper$")
	cmd.Env = append(os.Environ(), "PARLEY_PASSWORD_HELPER=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = theirs, theirs, theirs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = theirs.Close()
	var mu sync.Mutex
	var all bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := ours.Read(buf)
			mu.Lock()
			all.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	shown := func() string { mu.Lock(); defer mu.Unlock(); return all.String() }
	waitFor(t, "the prompt", func() bool { return strings.Contains(shown(), "Password for alice: ") })
	if _, err := ours.Write([]byte("s3cret-pass\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the helper's answer", func() bool { return strings.Contains(shown(), "]") || strings.Contains(shown(), "ERROR") })
	got := shown()
	_ = cmd.Wait()
	if !strings.Contains(got, "Password for alice: ") || !strings.Contains(got, "GOT[s3cret-pass]") {
		t.Fatalf("terminal output:\n%q", got)
	}
	if strings.Count(got, "s3cret-pass") != 1 {
		t.Fatalf("the password was echoed on the terminal:\n%q", got)
	}
}
