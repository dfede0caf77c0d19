package wire

import "time"

// Packet capture (admin).
const (
	// PathCaptures: POST runs a capture (CaptureRequest) and answers with
	// the merged pcapng file as it is written (Content-Type
	// application/x-pcapng), its outcome in the trailers below; GET lists
	// the captures running in the cluster (CaptureList).
	PathCaptures = "/v1/admin/captures"
	// PathCaptureLimits: GET shows the cluster's capture caps
	// (CaptureLimits, admin); PUT changes them (CaptureLimitsChange,
	// admin with a fresh TOTP code) and answers with the new caps.
	PathCaptureLimits = "/v1/admin/captures/limits"

	// Trailers of a capture's answer.
	TrailerCaptureSHA256  = "Ferry-Capture-Sha256"
	TrailerCapturePackets = "Ferry-Capture-Packets"
	TrailerCaptureBytes   = "Ferry-Capture-Bytes"
	TrailerCaptureDropped = "Ferry-Capture-Dropped"
	TrailerCaptureStopped = "Ferry-Capture-Stopped"
	TrailerCaptureNodes   = "Ferry-Capture-Nodes"
	TrailerCaptureError   = "Ferry-Capture-Error"

	// ContentTypePcapng is the media type of a capture's answer.
	ContentTypePcapng = "application/x-pcapng"
)

// CaptureRequest asks for a capture of one user's, peer's or profile's
// decrypted tunnel traffic on every node.
type CaptureRequest struct {
	// Exactly one of User (ID or email), Peer (ID) and Profile.
	User    string `json:"user,omitempty"`
	Peer    string `json:"peer,omitempty"`
	Profile string `json:"profile,omitempty"`
	// Filter in ferry's subset of tcpdump's language (docs/capture.md).
	Filter string `json:"filter,omitempty"`
	// DurationSeconds, MaxBytes and Snaplen: zero takes 60s, 50 MB and
	// the headers-only snap length; the cluster's caps bound them.
	DurationSeconds int64 `json:"duration_seconds,omitempty"`
	MaxBytes        int64 `json:"max_bytes,omitempty"`
	Snaplen         int   `json:"snaplen,omitempty"`
	// Reason is recorded with the capture's audit events. Required.
	Reason string `json:"reason"`
	// TOTP is a current code of the administrator's authenticator: a
	// capture needs a fresh second factor, not only a session. Required.
	TOTP string `json:"totp"`
}

// CaptureResult is a capture's outcome, from the answer's trailers.
type CaptureResult struct {
	SHA256  string `json:"sha256"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Dropped uint64 `json:"dropped"`
	Stopped string `json:"stopped"`
	Nodes   string `json:"nodes"`
	Error   string `json:"error,omitempty"`
}

// CaptureList lists running captures.
type CaptureList struct {
	Captures []RunningCapture `json:"captures"`
}

// RunningCapture is one capture running in the cluster.
type RunningCapture struct {
	ID      string    `json:"id"`
	Actor   string    `json:"actor"`
	Reason  string    `json:"reason,omitempty"`
	Clients []string  `json:"clients,omitempty"`
	Filter  string    `json:"filter,omitempty"`
	Started time.Time `json:"started"`
	// Node runs the capture (merges every node's part); the capture holds
	// one of the cluster's concurrent-capture places until it ends.
	Node string `json:"node"`
}

// CaptureLimits are the cluster's caps on captures, the same on every node.
type CaptureLimits struct {
	MaxDurationSeconds int64 `json:"max_duration_seconds"`
	MaxBytes           int64 `json:"max_bytes"`
	MaxConcurrent      int   `json:"max_concurrent"`
	// AllowPayload lets captures keep more than HeaderSnaplen bytes of
	// each packet (up to 65535).
	AllowPayload  bool `json:"allow_payload"`
	HeaderSnaplen int  `json:"header_snaplen"`
}

// CaptureLimitsChange changes some of the caps; absent fields stay.
type CaptureLimitsChange struct {
	MaxDurationSeconds *int64 `json:"max_duration_seconds,omitempty"`
	MaxBytes           *int64 `json:"max_bytes,omitempty"`
	MaxConcurrent      *int   `json:"max_concurrent,omitempty"`
	AllowPayload       *bool  `json:"allow_payload,omitempty"`
	// TOTP is a current code of the administrator's authenticator:
	// raising caps widens access. Required.
	TOTP string `json:"totp"`
}
