package netdev

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// StateVersion is the version of the state file format this build writes
// and reads.
const StateVersion = 1

// stateDoc is the state file: a JSON document, rewritten whole (temporary
// file, fsync, rename, fsync of the directory) on every change.
type stateDoc struct {
	Version int      `json:"version"`
	PID     int      `json:"pid"`     // the process that owns it
	BootID  string   `json:"boot_id"` // /proc/sys/kernel/random/boot_id when written
	Records []Record `json:"records"` // oldest first
}

// stateFile is a state file this process owns: it holds an exclusive
// flock on path+".lock" for as long as it owns it, so the lock is free
// exactly when the owner has died.
type stateFile struct {
	path   string
	lock   *os.File
	bootID string
}

// ErrLive is returned when a running process owns the state file.
var ErrLive = errors.New("a running appliance owns the state file")

// ErrCorrupt is returned for a state file that cannot be read.
var ErrCorrupt = errors.New("state file unreadable")

// StatePath is the state file, in dir, of the appliance with the control
// socket socket in the current network namespace (devices are per network
// namespace; the socket tells apart appliances sharing one).
func StatePath(dir, socket string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return "", fmt.Errorf("network namespace: %w", err)
	}
	h := fnv.New32a()
	h.Write([]byte(socket))
	return filepath.Join(dir, fmt.Sprintf("journal-net%d-%08x.json", st.Ino, h.Sum32())), nil
}

func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

// readState reads and checks a state file.
func readState(path string) (*stateDoc, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc stateDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %s: %v (inspect it, put the devices back by hand and remove it)", ErrCorrupt, path, err)
	}
	if doc.Version != StateVersion {
		return nil, fmt.Errorf("%w: %s: version %d, this build reads version %d only (restore with the build that wrote it)", ErrCorrupt, path, doc.Version, StateVersion)
	}
	for i, r := range doc.Records {
		if r.Kind == "" || r.Device == "" {
			return nil, fmt.Errorf("%w: %s: records[%d]: kind and device are required", ErrCorrupt, path, i)
		}
	}
	return &doc, nil
}

// Leftover reads, without changing anything, the state file an appliance
// using dir and socket would restore from at start: the devices it
// records as created by the appliance (a restart removes them), and
// whether there is such a file at all. A file of another boot counts as
// none (the reboot reset the devices).
func Leftover(dir, socket string) (created []string, found bool, err error) {
	path, err := StatePath(dir, socket)
	if err != nil {
		return nil, false, err
	}
	doc, err := readState(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if doc.BootID != "" && doc.BootID != bootID() {
		return nil, false, nil
	}
	for _, r := range doc.Records {
		if r.Kind == KindVeth || r.Kind == KindTap {
			created = append(created, r.Device)
			if r.Peer != "" {
				created = append(created, r.Peer)
			}
		}
	}
	return created, true, nil
}

// lockState takes the state file's lock, or fails with ErrLive naming the
// owner.
func lockState(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state file lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			owner := "another process"
			if doc, rerr := readState(path); rerr == nil {
				owner = fmt.Sprintf("pid %d", doc.PID)
			}
			return nil, fmt.Errorf("%w: %s is held by %s (stop that appliance first)", ErrLive, path, owner)
		}
		return nil, fmt.Errorf("state file lock %s.lock: %w", path, err)
	}
	return f, nil
}

// Open takes the state file at path for this journal, which must be
// empty. A file left by a process that died (kill -9, a panic, power
// loss) is restored first, each step reported: the devices get back the
// values found before that process's first change, so the journal then
// records the true originals afresh. It fails with ErrLive when a running
// process owns the file, with ErrCorrupt when the file cannot be read, and
// with the restore's errors (the file then keeps what was not undone).
// leftover tells whether there was a file to restore.
func (j *Journal) Open(path string, report func(Step)) (leftover bool, err error) {
	if len(j.recs) != 0 || j.st != nil {
		return false, errors.New("journal: Open on a journal in use")
	}
	lock, err := lockState(path)
	if err != nil {
		return false, err
	}
	st := &stateFile{path: path, lock: lock, bootID: bootID()}
	defer func() {
		if err != nil {
			st.release()
			j.st = nil
		}
	}()
	doc, err := readState(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return false, err
	case doc.BootID != st.bootID:
		leftover = true
		if report != nil {
			report(Step{Device: "*", What: "state", Note: fmt.Sprintf("%s is from an earlier boot (the reboot reset the devices): discarded", path)})
		}
	default:
		leftover = true
		for _, r := range doc.Records {
			j.recs = append(j.recs, &entry{Record: r})
		}
	}
	j.st = st
	if leftover {
		var errs []error
		for i := len(j.recs) - 1; i >= 0; i-- {
			if i < len(j.recs) {
				errs = append(errs, j.undoOne(j.recs[i], report))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return true, fmt.Errorf("state file %s (left by pid %d): %w", path, doc.PID, err)
		}
	}
	return leftover, j.save()
}

// save writes the journal's records to its state file, if it has one.
func (j *Journal) save() error {
	if j.st == nil {
		return nil
	}
	doc := stateDoc{Version: StateVersion, PID: os.Getpid(), BootID: j.st.bootID, Records: j.Records()}
	b, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		return err
	}
	if err := writeAtomic(j.st.path, append(b, '\n')); err != nil {
		return fmt.Errorf("state file %s: %w", j.st.path, err)
	}
	return nil
}

// writeAtomic replaces path by data: temporary file, fsync, rename, fsync
// of the directory, so a crash leaves the old or the new file, whole.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// remove deletes the state file (everything was undone).
func (s *stateFile) remove() error {
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	_ = os.Remove(s.path + ".lock") // still held: nobody else has it open locked
	return syncDir(filepath.Dir(s.path))
}

// release lets go of the lock.
func (s *stateFile) release() {
	if s.lock != nil {
		_ = s.lock.Close()
		s.lock = nil
	}
}

// Path is the journal's state file ("" when it keeps records in memory).
func (j *Journal) Path() string {
	if j.st == nil {
		return ""
	}
	return j.st.path
}

// Cleanup restores what a dead appliance's state file at path records and
// removes the file. found is false when there was no file. It fails with
// ErrLive while a running appliance owns the file.
func Cleanup(path string, report func(Step)) (found bool, err error) {
	if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
		if _, lerr := os.Stat(path + ".lock"); errors.Is(lerr, os.ErrNotExist) {
			return false, nil
		}
	}
	var j Journal
	found, err = j.Open(path, report)
	if err != nil {
		return found, err
	}
	return found, j.Restore()
}
