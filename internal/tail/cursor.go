package tail

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/eventsvc/eventsvc/client"
)

// cursorFile is the cursor file's content. The Python and TypeScript
// examples read and write the same format.
type cursorFile struct {
	AfterSequence uint64 `json:"after_sequence"`
	Epoch         string `json:"epoch"`
}

// readCursor reads the cursor file at path; ok is false when there is none.
func readCursor(path string) (c client.Cursor, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("%w: cursor file: %w", ErrConfig, err)
	}
	var f cursorFile
	if err := json.Unmarshal(b, &f); err != nil || f.Epoch == "" {
		return c, false, fmt.Errorf("%w: cursor file %s: want {\"after_sequence\": N, \"epoch\": \"…\"} (remove it to start afresh)", ErrConfig, path)
	}
	return client.Cursor{After: f.AfterSequence, Epoch: f.Epoch}, true, nil
}

// writeCursor replaces the cursor file at path with c, atomically: a crash
// leaves the old cursor or the new one, never a torn file.
func writeCursor(path string, c client.Cursor) error {
	b, err := json.Marshal(cursorFile{AfterSequence: c.After, Epoch: c.Epoch})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("cursor file: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // after a successful rename, a no-op
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("cursor file: %w", err)
	}
	return nil
}
