// Package threenode holds the end-to-end test of three real ferryd
// processes serving the data plane: each node in a network namespace of
// its own, the cluster formed with `ferryd init`, `ferryd token` and
// `ferryd join`, users signed in through ferryd's own sign-in (the desktop
// login flow of cmd/internal/loginflow, with a browser written in Go that
// fills the identity provider's form and enrolls TOTP), a WireGuard client
// in a client namespace, and an administrator's profile and revocation
// through the HTTP API.
//
// On a host without kernel WireGuard the nodes run the embedded device;
// TestThreeNodesKernelVM runs the same test in a QEMU machine booting
// Debian's kernel (tunnel/vmtest), where the nodes and the client run on
// wireguard.ko and the test fails if any of them fell back.
//
// The package has no code of its own outside tests.
package threenode
