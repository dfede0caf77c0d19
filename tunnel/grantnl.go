package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// elemBatch writes the grant writer's set element changes to the kernel:
// one nftables transaction per flush, encoded in place into a buffer it
// reuses, with an acknowledgement asked for on the last message only.
//
// google/nftables asks for an acknowledgement of every message and reads
// each with two system calls and a fresh page; with the grants spread
// over 64 sets, a transaction of sixteen answers is about sixteen
// messages, so those reads and pages were a fifth of the writer's time
// and half of what an answer allocated. The kernel runs a netlink
// transaction inside the sender's sendmsg and queues its replies before
// returning: errors of any message (always sent, asked for or not) and
// the last message's acknowledgement are waiting when the send returns,
// so they are read without waiting.
//
// An elemBatch is used by one goroutine at a time (the grant writer's).
type elemBatch struct {
	conn *netlink.Conn
	raw  syscall.RawConn
	// table names the sets' table.
	table string

	buf  []byte // the transaction being encoded
	rbuf []byte // replies
	seq  uint32 // the last sequence number used
	// first is the sequence number of the transaction's first message;
	// msg, list and setName are the open message, its element list
	// attribute, and the set it changes ("" when no message is open).
	first     uint32
	msg, list int
	setName   string
	del       bool
	msgs      int
}

// errNoAck is returned when the kernel's replies to a transaction lack
// the acknowledgement of its last message.
var errNoAck = errors.New("tunnel: nftables transaction not acknowledged")

// Netlink and nftables constants not in x/sys/unix.
const (
	nftaSetElemKeyEnd = 10 // NFTA_SET_ELEM_KEY_END
	// maxElemList bounds a message's element list: its attribute length
	// is 16 bits.
	maxElemList = 60000
)

// newElemBatch opens a netlink socket for table's set elements, in the
// network namespace netns (0: the caller's).
func newElemBatch(table string, netns int) (*elemBatch, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("opening the host grants' netlink socket: %w", err)
	}
	// Transactions of up to maxBatchOps elements; errors carry only the
	// failed message's header.
	for _, set := range []func() error{
		func() error { return c.SetWriteBuffer(16 << 20) },
		func() error { return c.SetReadBuffer(4 << 20) },
		func() error { return c.SetOption(netlink.CapAcknowledge, true) },
	} {
		if err := set(); err != nil {
			c.Close()
			return nil, fmt.Errorf("configuring the host grants' netlink socket: %w", err)
		}
	}
	raw, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("opening the host grants' netlink socket: %w", err)
	}
	return &elemBatch{conn: c, raw: raw, table: table, rbuf: make([]byte, 64<<10)}, nil
}

// Close closes the socket.
func (b *elemBatch) Close() error { return b.conn.Close() }

// begin starts a transaction.
func (b *elemBatch) begin() {
	b.buf, b.setName, b.msgs = b.buf[:0], "", 0
	b.first = b.seq + 1
	b.header(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	b.end()
}

// header opens a message: the netlink header (its length patched by end)
// and the nfgenmsg one.
func (b *elemBatch) header(typ, flags uint16, family uint8, resID uint16) {
	b.seq++
	b.msg = len(b.buf)
	b.buf = binary.NativeEndian.AppendUint32(b.buf, 0)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, flags)
	b.buf = binary.NativeEndian.AppendUint32(b.buf, b.seq)
	b.buf = binary.NativeEndian.AppendUint32(b.buf, 0)
	b.buf = append(b.buf, family, 0)
	b.buf = binary.BigEndian.AppendUint16(b.buf, resID)
}

// end patches the open message's length.
func (b *elemBatch) end() {
	binary.NativeEndian.PutUint32(b.buf[b.msg:], uint32(len(b.buf)-b.msg))
}

// attr appends an attribute with its payload, padded to 4 bytes.
func (b *elemBatch) attr(typ uint16, data []byte) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(4+len(data)))
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = append(b.buf, data...)
	for len(b.buf)%4 != 0 {
		b.buf = append(b.buf, 0)
	}
}

// strAttr appends a NUL-terminated string attribute.
func (b *elemBatch) strAttr(typ uint16, s string) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(4+len(s)+1))
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = append(b.buf, s...)
	b.buf = append(b.buf, 0)
	for len(b.buf)%4 != 0 {
		b.buf = append(b.buf, 0)
	}
}

// nest opens a nested attribute and returns its offset for closeNest.
func (b *elemBatch) nest(typ uint16) int {
	at := len(b.buf)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, 0)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ|unix.NLA_F_NESTED)
	return at
}

func (b *elemBatch) closeNest(at int) {
	binary.NativeEndian.PutUint16(b.buf[at:], uint16(len(b.buf)-at))
}

// closeMsg ends the open element message, if any.
func (b *elemBatch) closeMsg() {
	if b.setName == "" {
		return
	}
	b.closeNest(b.list)
	b.end()
	b.setName = ""
}

// add appends one element to add to set (with its timeout) or, with del,
// to delete from it; consecutive elements of one set and kind share a
// message.
func (b *elemBatch) add(set string, del bool, key, keyEnd []byte, timeout time.Duration) {
	if b.setName != set || b.del != del || len(b.buf)-b.list > maxElemList {
		b.closeMsg()
		typ := uint16(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM)
		if del {
			typ = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELSETELEM
		}
		b.header(typ, unix.NLM_F_REQUEST|unix.NLM_F_CREATE, unix.NFPROTO_INET, 0)
		b.strAttr(unix.NFTA_SET_ELEM_LIST_TABLE, b.table)
		b.strAttr(unix.NFTA_SET_ELEM_LIST_SET, set)
		b.list = b.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
		b.setName, b.del = set, del
		b.msgs++
	}
	el := b.nest(unix.NFTA_LIST_ELEM)
	k := b.nest(unix.NFTA_SET_ELEM_KEY)
	b.attr(unix.NFTA_DATA_VALUE, key)
	b.closeNest(k)
	k = b.nest(nftaSetElemKeyEnd)
	b.attr(unix.NFTA_DATA_VALUE, keyEnd)
	b.closeNest(k)
	if !del {
		var ms [8]byte
		binary.BigEndian.PutUint64(ms[:], uint64(max(timeout.Milliseconds(), 1)))
		b.attr(unix.NFTA_SET_ELEM_TIMEOUT, ms[:])
	}
	b.closeNest(el)
}

// commit ends the transaction, sends it and reads the kernel's verdict.
// The transaction is all or nothing: on an error nothing of it applies.
func (b *elemBatch) commit() error {
	b.closeMsg()
	if b.msgs == 0 {
		return nil
	}
	// Ask for the acknowledgement of the last element message.
	flags := binary.NativeEndian.Uint16(b.buf[b.msg+6:])
	binary.NativeEndian.PutUint16(b.buf[b.msg+6:], flags|unix.NLM_F_ACK)
	last := b.seq
	b.header(unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	b.end()

	var sendErr error
	if err := b.raw.Write(func(fd uintptr) bool {
		_, sendErr = unix.Write(int(fd), b.buf)
		return sendErr != unix.EAGAIN
	}); err != nil {
		return fmt.Errorf("sending host grants: %w", err)
	}
	if sendErr != nil {
		return fmt.Errorf("sending host grants: %w", sendErr)
	}
	var firstErr error
	for {
		var n int
		var recvErr error
		if err := b.raw.Read(func(fd uintptr) bool {
			n, _, recvErr = unix.Recvfrom(int(fd), b.rbuf, unix.MSG_DONTWAIT)
			return true
		}); err != nil {
			return fmt.Errorf("reading the kernel's answer to host grants: %w", err)
		}
		if recvErr == unix.EAGAIN {
			if firstErr != nil {
				return firstErr
			}
			return errNoAck
		}
		if recvErr != nil {
			return fmt.Errorf("reading the kernel's answer to host grants: %w", recvErr)
		}
		done, err := b.replies(b.rbuf[:n], last)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if done {
			return firstErr
		}
	}
}

// replies reads netlink replies to the transaction ending with message
// last: it reports whether last's acknowledgement (or error) was among
// them, and the first error of the transaction's messages.
func (b *elemBatch) replies(p []byte, last uint32) (done bool, err error) {
	for len(p) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(p))
		if l < unix.NLMSG_HDRLEN || l > len(p) {
			return done, fmt.Errorf("reading the kernel's answer to host grants: a reply of %d bytes in %d", l, len(p))
		}
		typ := binary.NativeEndian.Uint16(p[4:])
		seq := binary.NativeEndian.Uint32(p[8:])
		if typ == unix.NLMSG_ERROR && l >= unix.NLMSG_HDRLEN+4 && seq >= b.first && seq <= b.seq {
			if code := int32(binary.NativeEndian.Uint32(p[unix.NLMSG_HDRLEN:])); code != 0 && err == nil {
				err = fmt.Errorf("programming host grants: %w", syscall.Errno(-code))
			}
			// The batch's begin is answered only when the kernel gives
			// up on the whole transaction (out of memory).
			if seq == last || seq == b.first {
				done = true
			}
		}
		p = p[min(len(p), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
	}
	return done, err
}
