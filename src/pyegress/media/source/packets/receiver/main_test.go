package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func threadSlacks(t *testing.T) map[string]int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	slacks := map[string]int{}
	for _, task := range tasks {
		raw, err := os.ReadFile("/proc/" + task.Name() + "/timerslack_ns")
		if err != nil {
			t.Fatal(err)
		}
		if slacks[task.Name()], err = strconv.Atoi(strings.TrimSpace(string(raw))); err != nil {
			t.Fatal(err)
		}
	}
	return slacks
}

// TestTimerSlackReachesEveryThread: after setTimerSlack every thread of the process has the slack,
// and so do the threads the runtime starts afterwards (as /proc reports them).
func TestTimerSlackReachesEveryThread(t *testing.T) {
	before := threadSlacks(t)
	if err := setTimerSlack(20 * time.Millisecond); err != nil {
		t.Fatalf("setTimerSlack: %v", err)
	}
	// goroutines wired to their threads and blocked in read(2) make the runtime start more threads
	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	const blocked = 4
	done := make(chan struct{})
	for range blocked {
		go func() {
			runtime.LockOSThread()
			_, _ = syscall.Read(fds[0], make([]byte, 1))
			done <- struct{}{}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	after := threadSlacks(t)
	_, _ = syscall.Write(fds[1], make([]byte, blocked))
	for range blocked {
		<-done
	}
	started := 0
	for tid, ns := range after {
		if _, ok := before[tid]; !ok {
			started++
		}
		if ns != 20_000_000 {
			t.Errorf("thread %s: timer slack %d ns, want 20000000", tid, ns)
		}
	}
	if started == 0 {
		t.Errorf("no thread started after setTimerSlack (%d before, %d after)", len(before), len(after))
	}
}
