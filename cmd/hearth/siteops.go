package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/hearthfl/hearth/actors/auditor"
	"github.com/hearthfl/hearth/actors/credential"
	"github.com/hearthfl/hearth/actors/participant"
	"github.com/hearthfl/hearth/actors/protocol"
	"github.com/hearthfl/hearth/actors/siteadmin"
	"github.com/hearthfl/hearth/bus/kit"
	"github.com/hearthfl/hearth/bus/node"
	"github.com/hearthfl/hearth/policies/resources"
)

// lineRing keeps the newest lines written to it, for `admin site logs`: a
// site's log as it went to standard error, bounded in lines and bytes.
type lineRing struct {
	mu      sync.Mutex
	lines   []string
	next    int
	partial []byte
}

func newLineRing(n int) *lineRing { return &lineRing{lines: make([]string, 0, n)} }

// Write takes whole lines (slog writes one per record); a line longer than
// maxLogLine is clipped.
func (r *lineRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	data := append(r.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		r.add(string(data[:min(i, maxLogLine)]))
		data = data[i+1:]
	}
	r.partial = append([]byte(nil), data[:min(len(data), maxLogLine)]...)
	return len(p), nil
}

const maxLogLine = 4 << 10

func (r *lineRing) add(l string) {
	if len(r.lines) < cap(r.lines) {
		r.lines = append(r.lines, l)
		return
	}
	r.lines[r.next] = l
	r.next = (r.next + 1) % len(r.lines)
}

// Tail is the newest n lines, oldest first.
func (r *lineRing) Tail(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := append(append([]string(nil), r.lines[r.next:]...), r.lines[:r.next]...)
	return all[max(0, len(all)-n):]
}

// tailFile is the newest n lines of the file at path, reading at most its
// last maxTail bytes.
func tailFile(path string, n int) ([]string, error) {
	const maxTail = 4 << 20
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(0, st.Size()-maxTail)
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 2*n {
			lines = append(lines[:0], lines[len(lines)-n:]...)
		}
	}
	if off > 0 && len(lines) > 0 { // the first line read may be cut
		lines = lines[1:]
	}
	return lines[max(0, len(lines)-n):], sc.Err()
}

// memInfo reads MemTotal and MemAvailable from /proc/meminfo, "" where
// the system has none.
func memInfo() (total, available string) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "", ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			total = bytesText(kb << 10)
		case "MemAvailable:":
			available = bytesText(kb << 10)
		}
	}
	return total, available
}

// diskFree is the space free to the site's user in dir's file system.
func diskFree(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown: " + err.Error()
	}
	return bytesText(int64(st.Bavail) * st.Bsize)
}

// startSiteAdmin runs the actor that answers the site commands of admins
// (actors/siteadmin) and routes them to it.
func startSiteAdmin(n *node.Node, audit *auditor.Log, policy siteadmin.Authorizer, gate *credential.Gate, participantPID *actor.PID,
	logs *lineRing, offer resources.Offer, shutdown func()) error {
	started := time.Now()
	version := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
	}
	site := siteadmin.Site{
		Status: func(ctx context.Context) (map[string]string, []string) {
			facts := map[string]string{"name": n.Identity.Name, "org": n.Identity.Org, "version": version,
				"started": started.UTC().Format(time.RFC3339), "uptime": time.Since(started).Round(time.Second).String(),
				"hub": fmt.Sprint(n.Leaf.HubConnected())}
			res, err := n.System.Root.RequestFuture(participantPID, &participant.ListJoined{}, 5*time.Second).Result()
			if j, ok := res.(*participant.Joined); ok && err == nil {
				return facts, j.IDs
			}
			facts["jobs"] = fmt.Sprintf("unknown (%v)", err)
			return facts, nil
		},
		Resources: func() map[string]string {
			total, avail := memInfo()
			return map[string]string{"cpus": strconv.Itoa(runtime.NumCPU()), "memory": total, "memory_available": avail,
				"gpus": strconv.Itoa(offer.GPUs), "mem_per_gpu_gib": strconv.FormatFloat(offer.MemPerGPU, 'g', -1, 64), "data_disk_free": diskFree(n.Kit.DataDir())}
		},
		Logs: logs.Tail,
		Audit: func(lines int) ([]string, error) {
			return tailFile(filepath.Join(n.Kit.Dir, kit.StateDirName, auditFile), lines)
		},
		Shutdown: shutdown,
	}
	a, err := siteadmin.New(siteadmin.Config{Self: n.Identity, Trust: n.Trust, Policy: policy, Gate: gate, Signer: n.Signer, Audit: audit, Site: site,
		Log: n.Log().With("component", "siteadmin"), Started: started})
	if err != nil {
		return err
	}
	pid, err := n.System.Root.SpawnNamed(a.Props(), "siteadmin")
	if err != nil {
		return fmt.Errorf("siteadmin: %w", err)
	}
	for _, m := range siteadmin.Messages() {
		n.Bridge.Route(protocol.Name(m), pid)
	}
	return nil
}

// siteResources reads what the site offers jobs from its
// local/resources.json (policies/resources).
func siteResources(k *kit.Kit) (resources.Offer, error) {
	return resources.ParseFile(k.PolicyPath("resources.json"))
}
