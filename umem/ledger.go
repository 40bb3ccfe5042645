package umem

import (
	"errors"
	"fmt"
	"strings"
)

// Place is where a frame currently is.
//
// The lifecycle the lane follows, and the calls that record each step:
//
//	Free       -> InFlight    Alloc / AllocBatch
//	InFlight   -> Fill        Move, when the address is put on the fill ring
//	Fill       -> RX          Move, when the frame is read from the RX ring
//	RX         -> InFlight    Move, when the lane starts processing it
//	InFlight   -> TX          Move, when it is put on the TX ring
//	TX         -> Completion  Move, when it is read from the completion ring
//	Completion -> Free        Free / FreeBatch
//	InFlight   -> Free        Free / FreeBatch (dropped packet)
//
// The ledger checks only that a frame is where the caller says it is
// (Move's from argument); it does not restrict which transitions between
// Fill, RX, InFlight, TX and Completion the lane uses.
type Place uint8

// Frame places.
const (
	Free       Place = iota // on the free stack
	Fill                    // on the fill ring (kernel may receive into it)
	RX                      // on the RX ring (received, not yet taken by the lane)
	InFlight                // owned by user space
	TX                      // on the TX ring (kernel may be sending it)
	Completion              // read back from the completion ring
	numPlaces
)

// placeNone marks "no place" in violation records.
const placeNone Place = 255

var placeNames = [numPlaces]string{"Free", "Fill", "RX", "InFlight", "TX", "Completion"}

// String returns the place name.
func (p Place) String() string {
	if p < numPlaces {
		return placeNames[p]
	}
	return fmt.Sprintf("Place(%d)", uint8(p))
}

type op uint8

const (
	opMove op = iota
	opMoveFree
	opAlloc
	opFree
	opRejectRange
	opRejectOverflow
)

type violation struct {
	op       op
	addr     uint64
	frame    uint64
	from, to Place // requested transition
	was      Place // where the frame actually was
}

func (v violation) String() string {
	switch v.op {
	case opMove:
		return fmt.Sprintf("Move(%#x, %v->%v): frame %d was in %v", v.addr, v.from, v.to, v.frame, v.was)
	case opMoveFree:
		if v.was == placeNone {
			return fmt.Sprintf("Move(%#x, %v->%v): address outside the UMEM or invalid place", v.addr, v.from, v.to)
		}
		return fmt.Sprintf("Move(%#x, %v->%v): frame %d (in %v): transitions to or from Free must use Alloc/Free", v.addr, v.from, v.to, v.frame, v.was)
	case opAlloc:
		return fmt.Sprintf("Alloc: frame %d popped from the free stack was in %v", v.frame, v.was)
	case opFree:
		if v.was == Free {
			return fmt.Sprintf("Free(%#x): frame %d already Free (double free, ignored)", v.addr, v.frame)
		}
		return fmt.Sprintf("Free(%#x): frame %d was in %v, want InFlight or Completion", v.addr, v.frame, v.was)
	case opRejectRange:
		return fmt.Sprintf("Free(%#x): address outside the UMEM (ignored)", v.addr)
	case opRejectOverflow:
		return fmt.Sprintf("Free(%#x): frame %d would overflow the free stack (ignored)", v.addr, v.frame)
	}
	return "unknown violation"
}

// maxViolations is how many violations are kept verbatim; later ones are
// only counted.
const maxViolations = 8

type ledger struct {
	place      []Place // per frame
	count      [numPlaces]int
	violations uint64
	first      [maxViolations]violation
}

func (l *ledger) record(v violation) {
	if l.violations < maxViolations {
		l.first[l.violations] = v
	}
	l.violations++
}

func (l *ledger) set(f uint32, from, to Place) {
	l.count[from]--
	l.count[to]++
	l.place[f] = to
}

func (l *ledger) alloc(f uint32) {
	was := l.place[f]
	if was != Free {
		l.record(violation{op: opAlloc, frame: uint64(f), from: Free, to: InFlight, was: was})
	}
	l.set(f, was, InFlight)
}

// free records frame f going to Free and reports whether it may be pushed
// on the free stack.
func (l *ledger) free(f uint32, addr uint64) bool {
	was := l.place[f]
	switch was {
	case InFlight, Completion:
	case Free:
		l.record(violation{op: opFree, addr: addr, frame: uint64(f), from: placeNone, to: Free, was: was})
		return false
	default:
		l.record(violation{op: opFree, addr: addr, frame: uint64(f), from: placeNone, to: Free, was: was})
	}
	l.set(f, was, Free)
	return true
}

func (l *ledger) move(addr, f uint64, from, to Place) {
	if f >= uint64(len(l.place)) || from >= numPlaces || to >= numPlaces {
		l.record(violation{op: opMoveFree, addr: addr, frame: f, from: from, to: to, was: placeNone})
		return
	}
	was := l.place[f]
	if from == Free || to == Free || was == Free {
		// The free stack and the ledger must agree: only Alloc and Free
		// move frames out of or into Free.
		l.record(violation{op: opMoveFree, addr: addr, frame: f, from: from, to: to, was: was})
		return
	}
	if was != from {
		l.record(violation{op: opMove, addr: addr, frame: f, from: from, to: to, was: was})
	}
	l.set(uint32(f), was, to)
}

// EnableLedger turns on frame accounting. Frames currently on the free
// stack start as Free, every other frame as InFlight (it was handed out by
// Alloc). Calling it again has no effect. With the ledger off, Move is a
// single predictable branch.
func (u *UMEM) EnableLedger() {
	if u.ledger != nil {
		return
	}
	l := &ledger{place: make([]Place, u.numFrames)}
	for i := range l.place {
		l.place[i] = InFlight
	}
	for _, f := range u.stack[:u.top] {
		l.place[f] = Free
	}
	for _, p := range l.place {
		l.count[p]++
	}
	u.ledger = l
}

// Move records that the frame containing addr moved from one place to
// another. If the frame was not in from, a violation is recorded and the
// frame is moved anyway. Moves into or out of Free (use Alloc and Free),
// moves of a frame that is Free, invalid places and addresses outside the
// UMEM are recorded as violations and ignored. Move never panics; it is a
// no-op when the ledger is off.
func (u *UMEM) Move(addr uint64, from, to Place) {
	if u.ledger == nil {
		return
	}
	u.ledger.move(addr, addr>>u.shift, from, to)
}

// Count returns the number of frames in place p. With the ledger off only
// free frames are tracked: Count(Free) is Available(), Count(InFlight) is
// every other frame and the other places report 0.
func (u *UMEM) Count(p Place) int {
	if u.ledger == nil {
		switch p {
		case Free:
			return u.top
		case InFlight:
			return int(u.numFrames) - u.top
		}
		return 0
	}
	if p >= numPlaces {
		return 0
	}
	return u.ledger.count[p]
}

// CheckLedger returns nil when every frame is in exactly one place, the
// free stack holds exactly the Free frames, and no violation or rejected
// free was recorded. Otherwise the error lists the frame count per place
// and the first violations. With the ledger off it only reports rejected
// frees (addresses outside the UMEM, free-stack overflow).
func (u *UMEM) CheckLedger() error {
	l := u.ledger
	if l == nil {
		if u.rejected > 0 {
			return fmt.Errorf("umem: %d rejected free(s) (ledger off)", u.rejected)
		}
		return nil
	}

	var problems []string
	var recount [numPlaces]int
	for _, p := range l.place {
		if p >= numPlaces {
			problems = append(problems, fmt.Sprintf("frame in invalid place %v", p))
			continue
		}
		recount[p]++
	}
	if recount != l.count {
		problems = append(problems, fmt.Sprintf("place counts %v disagree with per-frame places %v", l.count, recount))
	}
	if u.top != recount[Free] {
		problems = append(problems, fmt.Sprintf("free stack holds %d frames, ledger has %d Free", u.top, recount[Free]))
	}
	onStack := make([]bool, u.numFrames)
	for _, f := range u.stack[:u.top] {
		switch {
		case onStack[f]:
			problems = append(problems, fmt.Sprintf("frame %d on the free stack twice", f))
		case l.place[f] != Free:
			problems = append(problems, fmt.Sprintf("frame %d on the free stack but in %v", f, l.place[f]))
		}
		onStack[f] = true
	}
	if l.violations == 0 && u.rejected == 0 && len(problems) == 0 {
		return nil
	}

	var b strings.Builder
	fmt.Fprintf(&b, "umem ledger: %d violation(s), %d rejected free(s); frames", l.violations, u.rejected)
	for p := range numPlaces {
		fmt.Fprintf(&b, " %v=%d", p, l.count[p])
	}
	fmt.Fprintf(&b, " (total %d)", u.numFrames)
	if len(problems) > 0 {
		if len(problems) > maxViolations {
			problems = append(problems[:maxViolations], fmt.Sprintf("... %d more", len(problems)-maxViolations))
		}
		b.WriteString("; inconsistencies: ")
		b.WriteString(strings.Join(problems, "; "))
	}
	if l.violations > 0 {
		b.WriteString("; first violations: ")
		for i := range min(l.violations, maxViolations) {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(l.first[i].String())
		}
		if l.violations > maxViolations {
			fmt.Fprintf(&b, "; ... %d more", l.violations-maxViolations)
		}
	}
	return errors.New(b.String())
}
