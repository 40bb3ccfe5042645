package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// memberState is what the appliance changes on a member and must put back.
type memberState struct {
	MAC, MTU, Channels, Flags string
}

// readMember reads a member's MAC, MTU, channel counts (ethtool -l) and
// its allmulti/promisc flags as netlink reports them.
func (e *env) readMember(m string) memberState {
	e.t.Helper()
	var s memberState
	for _, f := range []struct {
		dst  *string
		file string
	}{{&s.MAC, "address"}, {&s.MTU, "mtu"}} {
		out, err := e.topo.InGW(e.ctx, "cat", "/sys/class/net/"+m+"/"+f.file)
		if err != nil {
			e.t.Fatal(err)
		}
		*f.dst = strings.TrimSpace(out)
	}
	out, err := e.topo.InGW(e.ctx, "ethtool", "-l", m)
	if err != nil {
		e.t.Fatal(err)
	}
	if i := strings.Index(out, "Current hardware settings:"); i >= 0 {
		s.Channels = strings.Join(strings.Fields(out[i:]), " ")
	}
	out, err = e.topo.InGW(e.ctx, "ip", "-o", "link", "show", m)
	if err != nil {
		e.t.Fatal(err)
	}
	var fl []string
	for _, f := range []string{"PROMISC", "ALLMULTI"} {
		if strings.Contains(out, f) {
			fl = append(fl, f)
		}
	}
	s.Flags = strings.Join(fl, ",")
	return s
}

// crashEnv is setup with members of two queues (so the appliance's
// channel change to dataplane.queues 1 shows) and no appliance.
func crashEnv(t *testing.T) *env {
	t.Helper()
	privileged(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	topo, err := NewTopo(ctx, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(topo.Close)
	for _, ns := range []string{topo.GW, topo.Peer} {
		for _, k := range []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"} {
			if _, err := Sh(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", k); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &env{t: t, ctx: ctx, topo: topo}
}

// crashConfig is the lab bond's configuration with the state directory
// dir and the control socket sock.
func (e *env) crashConfig(dir, sock string) string {
	return strings.Replace(e.topo.Config(BondSpec{Mode: "active-backup", Options: map[string]string{"mac": `"02:00:5e:00:00:99"`, "mtu": "1400"}}, sock),
		"  state_dir: "+filepath.Join(filepath.Dir(sock), "state")+"\n", "  state_dir: "+dir+"\n", 1)
}

// pingUntil pings the host address from the peer until a reply comes back
// and returns how long that took.
func (e *env) pingUntil(from time.Time, limit time.Duration) time.Duration {
	e.t.Helper()
	for {
		if _, err := e.topo.InPeer(e.ctx, "ping", "-c", "1", "-W", "0.2", HostIP); err == nil {
			return time.Since(from)
		}
		if time.Since(from) > limit {
			e.t.Fatalf("no ping reply from %s within %v", HostIP, limit)
		}
	}
}

func (e *env) addHostIP() {
	e.t.Helper()
	if _, err := e.topo.InGW(e.ctx, "ip", "addr", "add", HostIP+Prefix, "dev", BondName); err != nil {
		e.t.Fatal(err)
	}
}

// TestIntegrationCrashRestart: kill -9 leaves the members changed and the
// host veth behind; the state file in control.state_dir lets a restart
// (or `bond-appliance cleanup`) put every member back exactly as it was
// before the first start, and the restart forwards again.
func TestIntegrationCrashRestart(t *testing.T) {
	for _, variant := range []string{"restart", "cleanup"} {
		t.Run(variant, func(t *testing.T) {
			e := crashEnv(t)
			// promisc on m1 beforehand: the appliance must leave it on
			if _, err := e.topo.InGW(e.ctx, "ip", "link", "set", e.topo.Members[1], "promisc", "on"); err != nil {
				t.Fatal(err)
			}
			before := map[string]memberState{}
			for _, m := range e.topo.Members {
				before[m] = e.readMember(m)
				t.Logf("%s before: %+v", m, before[m])
			}
			stateDir := t.TempDir()
			sock := filepath.Join(stateDir, "control.sock")
			cfg := e.crashConfig(stateDir, sock)
			p, err := e.topo.StartAt(e.ctx, applianceBin, cfg, sock)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Stop() })
			e.proc = p
			e.waitUp()
			e.addHostIP()
			e.pingUntil(time.Now(), 5*time.Second)

			// kill -9
			if err := p.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-p.done
			files, _ := filepath.Glob(filepath.Join(stateDir, "journal-*.json"))
			if len(files) != 1 {
				t.Fatalf("state files after kill -9: %v, want one", files)
			}
			out, _ := e.topo.InGW(e.ctx, "ip", "-o", "link", "show")
			if !strings.Contains(out, BondName+"@") {
				t.Fatalf("kill -9 left no %s (nothing to test):\n%s", BondName, out)
			}
			for _, m := range e.topo.Members {
				if s := e.readMember(m); s == before[m] {
					t.Fatalf("%s unchanged after kill -9 (nothing to test): %+v", m, s)
				}
			}

			switch variant {
			case "restart":
				t0 := time.Now()
				p2, err := e.topo.StartAt(e.ctx, applianceBin, cfg, sock)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p2.Stop() })
				up := time.Since(t0)
				e.proc = p2
				e.waitUp()
				e.addHostIP()
				took := e.pingUntil(t0, 10*time.Second)
				fmt.Printf("crash_restart_control_socket_ms=%d crash_restart_ping_ms=%d\n", up.Milliseconds(), took.Milliseconds())
				if took > 5*time.Second {
					t.Errorf("forwarding again took %v after the restart (goal 2 s)", took)
				}
				if !strings.Contains(p2.Log(), "did not stop cleanly") {
					t.Errorf("restart did not report the restore:\n%s", p2.Log())
				}
				if err := p2.Stop(); err != nil {
					t.Fatalf("clean stop: %v\n%s", err, p2.Log())
				}
			case "cleanup":
				f := filepath.Join(stateDir, "cleanup.yaml")
				if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
					t.Fatal(err)
				}
				out, err := Sh(e.ctx, "ip", "netns", "exec", e.topo.GW, applianceBin, "cleanup", "-c", f)
				t.Logf("cleanup:\n%s", out)
				if err != nil {
					t.Fatalf("cleanup: %v", err)
				}
				for _, want := range []string{"m0: mac 02:00:5e:00:00:99 → " + before["m0"].MAC, "bond0: veth present → deleted", "m1: mtu 1400 → 1500"} {
					if !strings.Contains(out, want) {
						t.Errorf("cleanup output lacks %q", want)
					}
				}
				// a second run finds nothing
				out, err = Sh(e.ctx, "ip", "netns", "exec", e.topo.GW, applianceBin, "cleanup", "-c", f)
				if err != nil || !strings.Contains(out, "nothing to restore") {
					t.Errorf("second cleanup: %v\n%s", err, out)
				}
			}

			for _, m := range e.topo.Members {
				if s := e.readMember(m); s != before[m] {
					t.Errorf("%s after %s: %+v, before the first start %+v", m, variant, s, before[m])
				}
				out, _ := e.topo.InGW(e.ctx, "ip", "-d", "link", "show", m)
				if strings.Contains(out, "prog/xdp") {
					t.Errorf("%s still has an XDP program:\n%s", m, out)
				}
			}
			out, _ = e.topo.InGW(e.ctx, "ip", "-o", "link", "show")
			if strings.Contains(out, BondName) {
				t.Errorf("host device left:\n%s", out)
			}
			if files, _ := filepath.Glob(filepath.Join(stateDir, "journal-*")); len(files) != 0 {
				t.Errorf("state files left: %v", files)
			}
		})
	}
}

// TestIntegrationCrashForeignBond: a device with the bond's name that no
// state file records is not removed; the start is refused naming it.
func TestIntegrationCrashForeignBond(t *testing.T) {
	e := crashEnv(t)
	if _, err := e.topo.InGW(e.ctx, "ip", "link", "add", BondName, "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "control.sock")
	_, err := e.topo.StartAt(e.ctx, applianceBin, e.crashConfig(dir, sock), sock)
	if err == nil || !strings.Contains(err.Error(), `"bond0" already exists and is not the appliance's`) {
		t.Fatalf("start with a foreign bond0: %v", err)
	}
	t.Logf("refused: %v", strings.SplitN(err.Error(), "\n", 2)[0])
	if out, _ := e.topo.InGW(e.ctx, "ip", "-d", "-o", "link", "show", BondName); !strings.Contains(out, "bridge") {
		t.Fatalf("foreign %s removed:\n%s", BondName, out)
	}
}

// TestIntegrationCrashForceXDP: an XDP program replaced under force: true
// goes back on the member at a clean stop, and after kill -9 at cleanup
// (it still exists: this test process holds it).
func TestIntegrationCrashForceXDP(t *testing.T) {
	e := crashEnv(t)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}}) // XDP_PASS
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	if err := attachInNetns(e.topo.GW, "m0", prog.FD()); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("prog/xdp id %d", id)
	progOn := func() string {
		out, _ := e.topo.InGW(e.ctx, "ip", "-d", "link", "show", "m0")
		return out
	}
	if !strings.Contains(progOn(), want) {
		t.Fatalf("m0 lacks %s:\n%s", want, progOn())
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "control.sock")
	cfg := strings.Replace(e.crashConfig(dir, sock), "    mode:", "    force: true\n    mode:", 1)
	for _, how := range []string{"clean stop", "kill -9 + cleanup"} {
		p, err := e.topo.StartAt(e.ctx, applianceBin, cfg, sock)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(progOn(), want) {
			p.Stop()
			t.Fatalf("%s: program %d not replaced:\n%s", how, id, progOn())
		}
		if how == "clean stop" {
			if err := p.Stop(); err != nil {
				t.Fatalf("stop: %v\n%s", err, p.Log())
			}
		} else {
			_ = p.cmd.Process.Kill()
			<-p.done
			p.Stop()
			f := filepath.Join(dir, "c.yaml")
			os.WriteFile(f, []byte(cfg), 0o600)
			out, err := Sh(e.ctx, "ip", "netns", "exec", e.topo.GW, applianceBin, "cleanup", "-c", f)
			t.Logf("cleanup:\n%s", out)
			if err != nil {
				t.Fatal(err)
			}
		}
		if !strings.Contains(progOn(), want) {
			t.Fatalf("after %s: m0 lacks the replaced program (%s):\n%s", how, want, progOn())
		}
	}
}

// attachInNetns attaches the XDP program fd to dev in namespace ns
// (generic mode, by netlink), from a thread switched into ns.
func attachInNetns(ns, dev string, fd int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	defer netns.Set(orig)
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return err
	}
	return netlink.LinkSetXdpFdWithFlags(l, fd, 1<<1) // XDP_FLAGS_SKB_MODE
}
