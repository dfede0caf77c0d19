package capture

import (
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"
)

// Filters compile to classic BPF over the IP packet (offset 0 is the IP
// header): the kernel runs the program on an AF_PACKET socket (SOCK_DGRAM,
// so any link-layer header is already stripped), and the embedded data
// plane's tap runs the same program in golang.org/x/net/bpf's VM. The
// program answers acceptLen for a match and 0 otherwise; the capture
// itself truncates to the snap length, so the original length is kept.

// acceptLen is what a matching program returns: more than any packet.
const acceptLen = 1 << 18

// label is a jump target, placed once.
type label int

// insn is an instruction whose jumps name labels.
type insn struct {
	ins    bpf.Instruction
	jt, jf label // for conditional jumps; -1 for fall through
	jmp    label // for unconditional jumps
	cond   bool
	uncond bool
}

type gen struct {
	code   []insn
	labels []int // position of each label, -1 until placed
}

func (g *gen) newLabel() label {
	g.labels = append(g.labels, -1)
	return label(len(g.labels) - 1)
}

func (g *gen) place(l label) { g.labels[l] = len(g.code) }

func (g *gen) emit(i bpf.Instruction) { g.code = append(g.code, insn{ins: i, jt: -1, jf: -1}) }

// test jumps to t when A cond v, else to f.
func (g *gen) test(cond bpf.JumpTest, v uint32, t, f label) {
	g.code = append(g.code, insn{ins: bpf.JumpIf{Cond: cond, Val: v}, jt: t, jf: f, cond: true})
}

func (g *gen) jump(l label) { g.code = append(g.code, insn{jmp: l, uncond: true}) }

// compile emits code that jumps to t when n matches and to f otherwise.
func (g *gen) compile(n node, t, f label) {
	switch n := n.(type) {
	case trueNode:
		g.jump(t)
	case orNode:
		next := g.newLabel()
		g.compile(n.l, t, next)
		g.place(next)
		g.compile(n.r, t, f)
	case andNode:
		next := g.newLabel()
		g.compile(n.l, next, f)
		g.place(next)
		g.compile(n.r, t, f)
	case notNode:
		g.compile(n.x, f, t)
	case familyNode:
		g.version(n.v6, t, f)
	case protoNode:
		v4, v6 := g.newLabel(), g.newLabel()
		g.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
		g.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
		g.test(bpf.JumpEqual, 4, v4, v6)
		g.place(v4)
		g.emit(bpf.LoadAbsolute{Off: 9, Size: 1})
		g.test(bpf.JumpEqual, uint32(n.proto), t, f)
		g.place(v6)
		g.test(bpf.JumpEqual, 6, g.labelAfter(), f)
		g.emit(bpf.LoadAbsolute{Off: 6, Size: 1})
		g.test(bpf.JumpEqual, uint32(n.proto), t, f)
	case clientsNode:
		// Each client's test is a short block ending in an unconditional
		// jump (32-bit skip) to t, so no conditional jump spans the whole
		// list: classic BPF's conditional skips are 8 bits.
		for _, p := range n {
			hit, next := g.newLabel(), g.newLabel()
			g.compile(hostNode{"", p}, hit, next)
			g.place(hit)
			g.jump(t)
			g.place(next)
		}
		g.jump(f)
	case hostNode:
		switch n.dir {
		case "src", "dst":
			g.prefix(n.dir == "src", n.prefix, t, f)
		default:
			next := g.newLabel()
			g.prefix(true, n.prefix, t, next)
			g.place(next)
			g.prefix(false, n.prefix, t, f)
		}
	case portNode:
		switch n.dir {
		case "src", "dst":
			g.port(n.dir == "src", n.port, t, f)
		default:
			next := g.newLabel()
			g.port(true, n.port, t, next)
			g.place(next)
			g.port(false, n.port, t, f)
		}
	default:
		panic(fmt.Sprintf("capture: unknown filter node %T", n))
	}
}

// version jumps to t when the packet's IP version is 6 (v6) or 4.
func (g *gen) version(v6 bool, t, f label) {
	g.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
	g.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
	if v6 {
		g.test(bpf.JumpEqual, 6, t, f)
	} else {
		g.test(bpf.JumpEqual, 4, t, f)
	}
}

// prefix matches the source (src) or destination address against p.
func (g *gen) prefix(src bool, p netip.Prefix, t, f label) {
	addr := p.Addr().AsSlice()
	off := uint32(16) // IPv4 destination
	if src {
		off = 12
	}
	if p.Addr().Is6() {
		off = 24
		if src {
			off = 8
		}
	}
	ok := g.newLabel()
	g.version(p.Addr().Is6(), ok, f)
	g.place(ok)
	bits := p.Bits()
	for w := 0; w*32 < len(addr)*8 && bits > 0; w++ {
		word := uint32(addr[4*w])<<24 | uint32(addr[4*w+1])<<16 | uint32(addr[4*w+2])<<8 | uint32(addr[4*w+3])
		g.emit(bpf.LoadAbsolute{Off: off + uint32(4*w), Size: 4})
		if bits < 32 {
			mask := ^uint32(0) << (32 - bits)
			g.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask})
			word &= mask
		}
		bits -= 32
		if bits > 0 {
			g.test(bpf.JumpEqual, word, g.labelAfter(), f)
		} else {
			g.test(bpf.JumpEqual, word, t, f)
		}
	}
	if p.Bits() == 0 {
		g.jump(t)
	}
}

// labelAfter returns a label for the instruction after the one about to
// be emitted.
func (g *gen) labelAfter() label {
	l := g.newLabel()
	g.labels[l] = len(g.code) + 1
	return l
}

// port matches the source (src) or destination TCP, UDP or SCTP port.
func (g *gen) port(src bool, port uint16, t, f label) {
	var po uint32 = 2 // destination port's offset in the transport header
	if src {
		po = 0
	}
	v4, v6, l4, ports := g.newLabel(), g.newLabel(), g.newLabel(), g.newLabel()
	g.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
	g.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
	g.test(bpf.JumpEqual, 4, v4, v6)

	g.place(v4)
	g.emit(bpf.LoadAbsolute{Off: 9, Size: 1})
	g.transport(ports, f)
	g.place(ports)
	g.emit(bpf.LoadAbsolute{Off: 6, Size: 2})
	g.test(bpf.JumpBitsSet, 0x1fff, f, g.labelAfter()) // a later fragment
	g.emit(bpf.LoadMemShift{Off: 0})
	g.emit(bpf.LoadIndirect{Off: po, Size: 2})
	g.test(bpf.JumpEqual, uint32(port), t, f)

	g.place(v6)
	g.test(bpf.JumpEqual, 6, g.labelAfter(), f)
	g.emit(bpf.LoadAbsolute{Off: 6, Size: 1})
	g.transport(l4, f)
	g.place(l4)
	g.emit(bpf.LoadAbsolute{Off: 40 + po, Size: 2})
	g.test(bpf.JumpEqual, uint32(port), t, f)
}

// transport jumps to t when A is TCP, UDP or SCTP.
func (g *gen) transport(t, f label) {
	g.test(bpf.JumpEqual, 6, t, g.labelAfter())
	g.test(bpf.JumpEqual, 17, t, g.labelAfter())
	g.test(bpf.JumpEqual, 132, t, f)
}

// errTooComplex is returned when a jump does not fit classic BPF's 8 bits.
var errTooComplex = fmt.Errorf("%w: too complex for one BPF program", ErrFilter)

// assemble resolves labels into relative skips.
func (g *gen) assemble() ([]bpf.Instruction, error) {
	out := make([]bpf.Instruction, len(g.code))
	skip := func(from int, l label) (uint32, error) {
		to := g.labels[l]
		if to < 0 {
			panic("capture: unplaced label")
		}
		d := to - from - 1
		if d < 0 {
			panic("capture: backward jump")
		}
		return uint32(d), nil
	}
	for i, c := range g.code {
		switch {
		case c.cond:
			jt, _ := skip(i, c.jt)
			jf, _ := skip(i, c.jf)
			if jt > 255 || jf > 255 {
				return nil, errTooComplex
			}
			j := c.ins.(bpf.JumpIf)
			j.SkipTrue, j.SkipFalse = uint8(jt), uint8(jf)
			out[i] = j
		case c.uncond:
			d, _ := skip(i, c.jmp)
			out[i] = bpf.Jump{Skip: d}
		default:
			out[i] = c.ins
		}
	}
	return out, nil
}

// maxInsns is classic BPF's program size limit (BPF_MAXINSNS).
const maxInsns = 4096

// compileProgram compiles n into a program accepting its matches.
func compileProgram(n node) ([]bpf.Instruction, error) {
	g := &gen{}
	accept, drop := g.newLabel(), g.newLabel()
	g.compile(n, accept, drop)
	g.place(accept)
	g.emit(bpf.RetConstant{Val: acceptLen})
	g.place(drop)
	g.emit(bpf.RetConstant{Val: 0})
	prog, err := g.assemble()
	if err != nil {
		return nil, err
	}
	if len(prog) > maxInsns {
		return nil, errTooComplex
	}
	return prog, nil
}

// Filter is a compiled capture filter: the operator's expression limited
// to the captured clients' addresses. It is immutable and safe for
// concurrent use.
type Filter struct {
	expr string
	prog []bpf.Instruction
	raw  []bpf.RawInstruction
	vm   *bpf.VM
	// who holds the clients' addresses: a packet that neither comes from
	// nor goes to one of them cannot pass the program, so Match rejects it
	// without running the VM. On a busy node nearly every packet is
	// another client's; this keeps a capture nearly free for them.
	who clientSet
}

// CompileFilter compiles expr (see the package's filter language),
// restricted to packets to or from one of clients; with no clients it
// matches nothing.
func CompileFilter(expr string, clients []netip.Addr) (*Filter, error) {
	user, err := parseFilter(expr)
	if err != nil {
		return nil, err
	}
	var who clientsNode
	for _, a := range clients {
		a = a.Unmap()
		who = append(who, netip.PrefixFrom(a, a.BitLen()))
	}
	prog, err := compileProgram(andNode{who, user})
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("%w: assembling: %v", ErrFilter, err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFilter, err)
	}
	return &Filter{expr: expr, prog: prog, raw: raw, vm: vm, who: newClientSet(clients)}, nil
}

// CheckFilter reports whether expr is in the filter language.
func CheckFilter(expr string) error {
	_, err := parseFilter(expr)
	return err
}

// Match reports whether the packet pkt (starting at its IP header) passes.
// It does not allocate.
func (f *Filter) Match(pkt []byte) bool {
	if !f.who.either(pkt) {
		return false
	}
	return f.matchVM(pkt)
}

// matchVM runs the program alone: Match without the address check, the
// reference Match is tested against.
func (f *Filter) matchVM(pkt []byte) bool {
	n, err := f.vm.Run(pkt)
	return err == nil && n > 0
}

// String returns the operator's expression.
func (f *Filter) String() string { return f.expr }
