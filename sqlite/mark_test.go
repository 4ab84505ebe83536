package sqlite

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMarkSlots checks the mark file's two slots: the larger valid one is
// the mark, a torn or damaged slot falls back to the other, and a file with
// no valid slot is refused rather than read as no mark.
func TestMarkSlots(t *testing.T) {
	for _, tc := range []struct {
		name    string
		writes  []int64
		damage  func(t *testing.T, path string)
		want    int64
		wantErr bool
	}{
		{"new", nil, nil, 0, false},
		{"one write", []int64{7}, nil, 7, false},
		{"both slots", []int64{7, 9}, nil, 9, false},
		{"three writes", []int64{7, 9, 12}, nil, 12, false},
		{"latest slot torn", []int64{7, 9}, func(t *testing.T, path string) { corrupt(t, path, markSlot+10) }, 7, false},
		{"older slot torn", []int64{7, 9}, func(t *testing.T, path string) { corrupt(t, path, 3) }, 9, false},
		{"both torn", []int64{7, 9}, func(t *testing.T, path string) { corrupt(t, path, 3); corrupt(t, path, markSlot+3) }, 0, true},
		{"garbage", nil, func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("not a mark"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m, v, err := openMark(dir)
			if err != nil || v != 0 {
				t.Fatalf("openMark of a new dir: %d, %v", v, err)
			}
			for _, w := range tc.writes {
				if err := m.write(w); err != nil {
					t.Fatal(err)
				}
			}
			m.close()
			if tc.damage != nil {
				tc.damage(t, filepath.Join(dir, MarkName))
			}
			m, v, err = openMark(dir)
			if tc.wantErr {
				if err == nil {
					m.close()
					t.Fatalf("openMark = %d; want an error", v)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.close()
			if v != tc.want {
				t.Errorf("mark = %d, want %d", v, tc.want)
			}
			// The next write goes to the other slot and wins.
			if err := m.write(v + 1); err != nil {
				t.Fatal(err)
			}
			m.close()
			if m, v2, err := openMark(dir); err != nil || v2 != v+1 {
				t.Errorf("after another write: %d, %v; want %d", v2, err, v+1)
			} else {
				m.close()
			}
		})
	}
}

func corrupt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{0xde, 0xad}, off); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkMarkWrite measures one mark write (pwrite + fdatasync): what the
// marker goroutine spends per group commit, beside the commit path.
func BenchmarkMarkWrite(b *testing.B) {
	m, _, err := openMark(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer m.close()
	for i := range b.N {
		if err := m.write(int64(i + 1)); err != nil {
			b.Fatal(err)
		}
	}
}
