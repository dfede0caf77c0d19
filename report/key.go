package report

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"time"
)

// key is a rollup bucket's key without its period: who, through which
// profile, to what (and the name whose DNS answer granted it, for host
// rules), with which verdict.
type key struct {
	User, Email, Device string
	Profile             string
	Version             uint64
	Dst, Proto          string
	Port                uint16
	Host                string
	Deny                bool
}

// encode lays out the period (unix seconds, big endian, so buckets sort by
// time) and the fields separated by 0x00 (which no field holds).
func (k key) encode(period time.Time) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 96), uint64(period.Unix()))
	verdict := "a"
	if k.Deny {
		verdict = "d"
	}
	for _, f := range []string{k.User, k.Email, k.Device, k.Profile, strconv.FormatUint(k.Version, 10), k.Dst, k.Proto,
		strconv.Itoa(int(k.Port)), k.Host, verdict} {
		b = append(b, f...)
		b = append(b, 0)
	}
	return b
}

// decodeKey reverses encode.
func decodeKey(b []byte) (key, time.Time, bool) {
	if len(b) < 8 {
		return key{}, time.Time{}, false
	}
	period := time.Unix(int64(binary.BigEndian.Uint64(b)), 0).UTC()
	f := bytes.Split(b[8:], []byte{0})
	if len(f) != 11 {
		return key{}, time.Time{}, false
	}
	v, _ := strconv.ParseUint(string(f[4]), 10, 64)
	p, _ := strconv.ParseUint(string(f[7]), 10, 16)
	return key{User: string(f[0]), Email: string(f[1]), Device: string(f[2]), Profile: string(f[3]), Version: v,
		Dst: string(f[5]), Proto: string(f[6]), Port: uint16(p), Host: string(f[8]), Deny: string(f[9]) == "d"}, period, true
}

// counts are a bucket's totals.
type counts struct {
	Flows, PktsOut, PktsIn, BytesOut, BytesIn, Denied uint64
	First, Last                                       int64 // unix nanoseconds
}

func (c *counts) add(d counts) {
	c.Flows += d.Flows
	c.PktsOut += d.PktsOut
	c.PktsIn += d.PktsIn
	c.BytesOut += d.BytesOut
	c.BytesIn += d.BytesIn
	c.Denied += d.Denied
	if d.First != 0 && (c.First == 0 || d.First < c.First) {
		c.First = d.First
	}
	if d.Last > c.Last {
		c.Last = d.Last
	}
}

const countsLen = 8 * 8

func (c *counts) encode() []byte {
	b := make([]byte, 0, countsLen)
	for _, v := range []uint64{c.Flows, c.PktsOut, c.PktsIn, c.BytesOut, c.BytesIn, c.Denied, uint64(c.First), uint64(c.Last)} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

func decodeCounts(b []byte) counts {
	if len(b) < countsLen {
		return counts{}
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[8*i:]) }
	return counts{Flows: u(0), PktsOut: u(1), PktsIn: u(2), BytesOut: u(3), BytesIn: u(4), Denied: u(5),
		First: int64(u(6)), Last: int64(u(7))}
}
