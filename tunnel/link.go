package tunnel

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Link management over rtnetlink, so the data plane needs no ip(8).

func rtnl(msgs ...netlink.Message) error {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return fmt.Errorf("opening rtnetlink: %w", err)
	}
	defer c.Close()
	for _, m := range msgs {
		if _, err := c.Execute(m); err != nil {
			return err
		}
	}
	return nil
}

// ifinfomsg encodes struct ifinfomsg.
func ifinfomsg(index int, flags, change uint32) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	binary.NativeEndian.PutUint32(b[8:12], flags)
	binary.NativeEndian.PutUint32(b[12:16], change)
	return b
}

// addWireGuardLink creates a kernel WireGuard interface.
func addWireGuardLink(name string) error {
	info, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.IFLA_INFO_KIND, Data: []byte("wireguard")}})
	if err != nil {
		return err
	}
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.IFLA_IFNAME, Data: append([]byte(name), 0)},
		{Type: unix.IFLA_LINKINFO | unix.NLA_F_NESTED, Data: info},
	})
	if err != nil {
		return err
	}
	return rtnl(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_NEWLINK, Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl},
		Data:   append(ifinfomsg(0, 0, 0), attrs...),
	})
}

// deleteLink removes an interface by name; a missing one is not an error.
func deleteLink(name string) error {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil
	}
	return rtnl(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_DELLINK, Flags: netlink.Request | netlink.Acknowledge},
		Data:   ifinfomsg(ifc.Index, 0, 0),
	})
}

// configureLink sets the interface's MTU and addresses (IPv4, IPv6) and
// brings it up.
func configureLink(name string, mtu int, addrs ...netip.Prefix) error {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return fmt.Errorf("finding interface %s: %w", name, err)
	}
	mtuAttr, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.IFLA_MTU, Data: binary.NativeEndian.AppendUint32(nil, uint32(mtu))}})
	if err != nil {
		return err
	}
	msgs := []netlink.Message{{
		Header: netlink.Header{Type: unix.RTM_NEWLINK, Flags: netlink.Request | netlink.Acknowledge},
		Data:   append(ifinfomsg(ifc.Index, 0, 0), mtuAttr...),
	}}
	for _, addr := range addrs {
		a := addr.Addr().AsSlice()
		attrs := []netlink.Attribute{{Type: unix.IFA_ADDRESS, Data: a}}
		family := byte(unix.AF_INET6)
		if addr.Addr().Is4() {
			family = unix.AF_INET
			attrs = append(attrs, netlink.Attribute{Type: unix.IFA_LOCAL, Data: a})
		}
		addrAttrs, err := netlink.MarshalAttributes(attrs)
		if err != nil {
			return err
		}
		// IFA_F_NODAD: the tunnel has no neighbours to detect duplicates
		// with, and the address must be usable at once.
		ifa := []byte{family, byte(addr.Bits()), 0, 0, 0, 0, 0, 0}
		if family == unix.AF_INET6 {
			ifa[2] = unix.IFA_F_NODAD
		}
		binary.NativeEndian.PutUint32(ifa[4:], uint32(ifc.Index))
		msgs = append(msgs, netlink.Message{
			Header: netlink.Header{Type: unix.RTM_NEWADDR, Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Replace},
			Data:   append(ifa, addrAttrs...),
		})
	}
	err = rtnl(append(msgs,
		netlink.Message{
			Header: netlink.Header{Type: unix.RTM_NEWLINK, Flags: netlink.Request | netlink.Acknowledge},
			Data:   ifinfomsg(ifc.Index, unix.IFF_UP, unix.IFF_UP),
		})...)
	if err != nil {
		return fmt.Errorf("configuring interface %s: %w", name, err)
	}
	return nil
}

// sysctlRoot is where sysctls live; per network namespace.
const sysctlRoot = "/proc/sys"

func setSysctl(name, value string) error {
	p := filepath.Join(sysctlRoot, strings.ReplaceAll(name, ".", "/"))
	cur, err := os.ReadFile(p)
	if err == nil && strings.TrimSpace(string(cur)) == value {
		return nil
	}
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("setting %s=%s: %w", name, value, err)
	}
	return nil
}
