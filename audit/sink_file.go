package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FileSinkConfig configures a rotating file sink. Zero values take the
// documented defaults.
type FileSinkConfig struct {
	// Name identifies the sink and its cursor; default "file".
	Name string
	// Path is the file written to. Required. Rotated files are named
	// Path.<UTC time> beside it.
	Path string
	// Format is the line format; default JSONLines (verifiable offline
	// with VerifyFile).
	Format Format
	// MaxBytes rotates the file before it would grow past this size;
	// default 100 MiB.
	MaxBytes int64
	// MaxFiles is how many rotated files are kept; default 10. Older ones
	// are deleted.
	MaxFiles int
	// NoSync skips fsync after each batch. Unsafe: a crash may lose
	// entries that were reported delivered.
	NoSync bool
	// Now names rotated files; default time.Now.
	Now func() time.Time
}

// FileSink appends entries to a local file, one line each, and confirms a
// batch once it is written and synced.
//
// A file sink is node-local (NodeLocal): it runs on every node, from that
// node's own copy of the journal, with a cursor kept beside the file
// (Path.cursor) rather than in the cluster, so every machine holds the
// whole trail for a local log shipper, whoever leads. It creates the
// file's directory (0700) when missing.
type FileSink struct {
	cfg  FileSinkConfig
	f    *os.File
	size int64
	last uint64
	buf  []byte
}

var _ NodeLocal = (*FileSink)(nil)

// Cursor returns the last record this node's file holds, from Path.cursor
// (0 when there is none yet).
func (s *FileSink) Cursor() (uint64, error) {
	b, err := os.ReadFile(s.cfg.Path + ".cursor")
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading file sink cursor: %w", err)
	}
	seq, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s.cursor: %v", ErrMalformed, s.cfg.Path, err)
	}
	return seq, nil
}

// saveCursor records seq as written, atomically.
func (s *FileSink) saveCursor(seq uint64) error {
	tmp := s.cfg.Path + ".cursor.tmp"
	if err := os.WriteFile(tmp, strconv.AppendUint(nil, seq, 10), 0o600); err != nil {
		return fmt.Errorf("writing file sink cursor: %w", err)
	}
	if err := os.Rename(tmp, s.cfg.Path+".cursor"); err != nil {
		return fmt.Errorf("writing file sink cursor: %w", err)
	}
	return nil
}

// NewFileSink returns a file sink. The file is opened at the first Send.
func NewFileSink(cfg FileSinkConfig) (*FileSink, error) {
	if cfg.Name == "" {
		cfg.Name = "file"
	}
	if err := checkSinkName(cfg.Name); err != nil {
		return nil, err
	}
	switch {
	case cfg.Path == "":
		return nil, errors.New("audit file sink: path: required")
	case cfg.MaxBytes < 0 || cfg.MaxFiles < 0:
		return nil, errors.New("audit file sink: max_bytes and max_files must not be negative")
	}
	if cfg.Format == nil {
		cfg.Format = JSONLines{}
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 100 << 20
	}
	if cfg.MaxFiles == 0 {
		cfg.MaxFiles = 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &FileSink{cfg: cfg}, nil
}

// Name returns the sink's name.
func (s *FileSink) Name() string { return s.cfg.Name }

// Send appends entries and syncs the file.
func (s *FileSink) Send(ctx context.Context, entries []Entry) (uint64, error) {
	if len(entries) == 0 {
		return s.last, nil
	}
	s.buf = s.buf[:0]
	var err error
	for i := range entries {
		if s.buf, err = s.cfg.Format.Append(s.buf, &entries[i]); err != nil {
			return s.last, fmt.Errorf("formatting record %d: %w", entries[i].Seq, err)
		}
		s.buf = append(s.buf, '\n')
	}
	if s.f == nil {
		if err := s.open(); err != nil {
			return s.last, err
		}
	}
	if s.size > 0 && s.size+int64(len(s.buf)) > s.cfg.MaxBytes {
		if err := s.rotate(); err != nil {
			return s.last, err
		}
		if err := s.open(); err != nil {
			return s.last, err
		}
	}
	n, err := s.f.Write(s.buf)
	s.size += int64(n)
	if err != nil {
		return s.last, fmt.Errorf("writing %s: %w", s.cfg.Path, err)
	}
	if !s.cfg.NoSync {
		if err := s.f.Sync(); err != nil {
			return s.last, fmt.Errorf("syncing %s: %w", s.cfg.Path, err)
		}
	}
	s.last = entries[len(entries)-1].LastSeq()
	if err := s.saveCursor(s.last); err != nil {
		return s.last, err
	}
	return s.last, nil
}

func (s *FileSink) open() error {
	if err := os.MkdirAll(filepath.Dir(s.cfg.Path), 0o700); err != nil {
		return fmt.Errorf("creating audit file directory: %w", err)
	}
	f, err := os.OpenFile(s.cfg.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening audit file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening audit file: %w", err)
	}
	s.f, s.size = f, fi.Size()
	return nil
}

// rotate renames the current file aside and prunes old ones.
func (s *FileSink) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", s.cfg.Path, err)
	}
	s.f = nil
	aside := s.cfg.Path + "." + s.cfg.Now().UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(s.cfg.Path, aside); err != nil {
		return fmt.Errorf("rotating %s: %w", s.cfg.Path, err)
	}
	old, err := filepath.Glob(s.cfg.Path + ".*")
	if err != nil {
		return err
	}
	var rotated []string
	for _, p := range old {
		if len(p) == len(aside) && strings.HasSuffix(p, "Z") {
			rotated = append(rotated, p)
		}
	}
	sort.Strings(rotated)
	for len(rotated) > s.cfg.MaxFiles {
		if err := os.Remove(rotated[0]); err != nil {
			return fmt.Errorf("pruning rotated audit file: %w", err)
		}
		rotated = rotated[1:]
	}
	return nil
}

// Reset closes the file; everything written was already confirmed.
func (s *FileSink) Reset() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// Close closes the file.
func (s *FileSink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
