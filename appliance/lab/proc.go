package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bond-appliance/bond-appliance/appliance"
)

// BondSpec describes the lab bond.
type BondSpec struct {
	Mode       string            // bonding mode name or number
	Options    map[string]string // extra bond options (bonding names), YAML scalars
	Cores      []int             // default: last CPU
	HostDevice string            // veth (default) or tap
	Poll       string            // busy or adaptive (default adaptive)
	Metrics    string            // metrics.listen ("" = off)
}

// stateDirFor is the undo journal's directory of a run whose control
// socket is socket: beside it ("@STATEDIR@" while the socket is the
// "@SOCKET@" placeholder that Start fills in).
func stateDirFor(socket string) string {
	if socket == "@SOCKET@" {
		return "@STATEDIR@"
	}
	return filepath.Join(filepath.Dir(socket), "state")
}

// Config renders the YAML configuration of a one-bond appliance on t.
func (t *Topo) Config(spec BondSpec, socket string) string {
	cores := spec.Cores
	if len(cores) == 0 {
		cores = []int{lastCPU()}
	}
	hd := spec.HostDevice
	if hd == "" {
		hd = "veth"
	}
	poll := spec.Poll
	if poll == "" {
		poll = "adaptive"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "dataplane:\n  cores: %s\n  queues: %d\n  ring_size: 1024\n  poll: %s\n  host_device: %s\n", intList(cores), len(cores), poll, hd)
	// the undo journal beside the socket, in the run's own directory
	fmt.Fprintf(&b, "control:\n  socket: %s\n  state_dir: %s\nlog:\n  level: info\n", socket, stateDirFor(socket))
	if spec.Metrics != "" {
		fmt.Fprintf(&b, "metrics:\n  listen: %q\n", spec.Metrics)
	}
	slaves := "[" + strings.Join(t.Members, ", ") + "]"
	if v, ok := spec.Options["slaves"]; ok {
		slaves = v
	}
	fmt.Fprintf(&b, "bonds:\n  - name: %s\n    mode: %s\n    slaves: %s\n", BondName, spec.Mode, slaves)
	for k, v := range spec.Options {
		if k != "slaves" {
			fmt.Fprintf(&b, "    %s: %s\n", k, v)
		}
	}
	return b.String()
}

func intList(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func lastCPU() int {
	n := 1
	if b, err := os.ReadFile("/sys/devices/system/cpu/online"); err == nil {
		s := strings.TrimSpace(string(b))
		if i := strings.LastIndexAny(s, "-,"); i >= 0 {
			s = s[i+1:]
		}
		fmt.Sscan(s, &n)
		return n
	}
	return n - 1
}

// Proc is an appliance process running in the gateway namespace.
type Proc struct {
	Socket string
	Dir    string
	cmd    *exec.Cmd
	log    *syncBuffer
	done   chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs binary with the YAML config in the gateway namespace and waits
// until its control socket answers. The temporary directory it makes (the
// configuration file and the control socket) is removed by Stop, or here
// when the appliance does not start.
func (t *Topo) Start(ctx context.Context, binary, yaml string) (_ *Proc, err error) {
	return t.StartAt(ctx, binary, yaml, "")
}

// StartAt is Start with the control socket at sock ("" = a new one in the
// run's own directory). A restart after a crash passes the socket of the
// instance it replaces: the undo journal the new instance restores from is
// kept beside it (state_dir "@STATEDIR@").
func (t *Topo) StartAt(ctx context.Context, binary, yaml, sock string) (_ *Proc, err error) {
	dir, err := os.MkdirTemp("", "ba-"+t.ID+"-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if sock == "" {
		sock = filepath.Join(dir, "control.sock")
	}
	yaml = strings.ReplaceAll(yaml, "@SOCKET@", sock)
	yaml = strings.ReplaceAll(yaml, "@STATEDIR@", stateDirFor(sock))
	cfg := filepath.Join(dir, "bond.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	p := &Proc{Socket: sock, Dir: dir, log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", "netns", "exec", t.GW, binary, "-c", cfg)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := p.Status(""); err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("appliance exited: %v\n%s", p.err, p.log.String())
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("appliance did not answer on %s within 15 s\n%s", sock, p.log.String())
		}
	}
}

// Status asks the running appliance for its status.
func (p *Proc) Status(bond string) (*appliance.Status, error) {
	resp, err := appliance.Call(p.Socket, appliance.Request{Cmd: "status", Bond: bond})
	if err != nil {
		return nil, err
	}
	if !resp.OK {
		return nil, fmt.Errorf("%s", resp.Error)
	}
	return resp.Status, nil
}

// StatusJSON is Status as indented JSON (for logs).
func (p *Proc) StatusJSON() string {
	st, err := p.Status("")
	if err != nil {
		return err.Error()
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	return string(b)
}

// Log returns what the appliance printed.
func (p *Proc) Log() string { return p.log.String() }

// Stop sends SIGTERM and waits (SIGKILL after 10 s). It returns the exit error.
func (p *Proc) Stop() error {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	os.RemoveAll(p.Dir)
	return p.err
}

func firstBond(st *appliance.Status) string {
	st2 := *st
	st2.Lanes = nil
	return appliance.FormatText(&st2)
}

// Summary is a one-line view of a status: per slave MII state and tx/rx.
func Summary(st *appliance.Status) string {
	if st == nil || len(st.Bonds) == 0 {
		return "no status"
	}
	b := st.Bonds[0]
	s := fmt.Sprintf("active=%s mii=%s host_rx=%d host_tx=%d", b.CurrentlyActiveSlave, b.MIIStatus, b.Host.RxPackets, b.Host.TxPackets)
	for _, sl := range b.Slaves {
		s += fmt.Sprintf(" %s:%s tx=%d rx=%d", sl.Name, sl.MIIStatus, sl.Counters.TxPackets, sl.Counters.RxPackets)
	}
	return s
}
