package sqlite

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/surgehq/surge"
	"github.com/surgehq/surge/ledger"
)

// ImageName is the ledger image inside the data directory.
const ImageName = "surge.ledger"

// The ledger image spares a start the replay of every order of a large
// sale. Replaying a million orders costs about 2.7 s of CPU (SQLite
// stepping through them, then the ledger indexing them); reading back the
// ledgers Close wrote out costs a small part of that (docs/benchmarks.md,
// 2026-12-04).
//
// Close writes the ledger of every sale in service to surge.ledger (the
// records and strings as they are in memory, ledger.WriteImage) with the
// point of the database it shows: the last order's seq, the last settle
// (below) and the progress then. So does the store itself, from a
// snapshot, once idle after a spike (imager), so that a crash after the
// spike does not replay it. A start that finds it takes each sale's
// ledger from it and replays only what came after: the orders with a
// larger seq, and the settles with a larger number. So the image serves
// a start after a crash as well as after a clean stop: whatever the last
// store did after its image is found in the database by those two
// numbers.
//
// The settles: moving an order out of reserved (paid, cancelled,
// expired) is the one change to an order after its insert, and it is
// otherwise invisible to a reader asking "what changed since". Each one
// stamps the order's settled column with the next number of a sequence
// the writer keeps (one partial index, off the reservation path).
//
// Why it can be trusted:
//   - It belongs to this database: the image is written (and synced),
//     then a random token into the database's ledger_image row, and the
//     image carries the same token. A database replaced, restored from a
//     copy taken before that close, or whose row was written by a later
//     close, does not match, and the start replays everything.
//   - It is whole: a CRC-32C of the file; the ledger checks that every
//     record lies within it (ledger.ReadImage).
//   - Nothing else changed: progress counts every change ever made (the
//     high-water mark, integrity.go). A start checks that the database's
//     progress is the image's plus the sales, orders and settles after
//     it; anything that changed orders without stamping them (an older
//     version, a hand-made UPDATE) breaks the sum, and the start replays
//     everything.
//
// A store whose sales in service keep fewer than Options.ImageMin orders
// in memory writes none: it loads quickly anyway, and Close stays cheap.
const imageSchema = `
CREATE TABLE IF NOT EXISTS ledger_image (
	one   INTEGER PRIMARY KEY CHECK (one = 1),
	token BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS orders_by_settle ON orders (settled) WHERE settled IS NOT NULL;
`

// defaultImageMin is the records past which Close writes an image.
const defaultImageMin = 50_000

// upgradeImage adds the settle numbers and the image's row to a database
// made before them.
func upgradeImage(ctx context.Context, db schemaDB) error {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('orders') WHERE name = 'settled'`).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if _, err := db.ExecContext(ctx, `ALTER TABLE orders ADD COLUMN settled INTEGER`); err != nil {
			return err
		}
	}
	_, err := db.ExecContext(ctx, imageSchema)
	return err
}

// lastSettle is the number of the last settle written.
func lastSettle(ctx context.Context, db source) (int64, error) {
	var n sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT max(settled) FROM orders WHERE settled IS NOT NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: read the last settle: %w", err)
	}
	return n.Int64, nil
}

// The file, little endian: "SURGELI1" | token (16 bytes) | last seq |
// last settle | progress | sales made | sales in the image (uint64s) |
// per sale: its id's length (uint16), the id, the length of its ledger's
// image (uint64), the image | CRC-32C of all before (uint32).
const imageMagic = "SURGELI1"

// image is a ledger image read back.
type image struct {
	imagePoint
	ledgers map[string]*ledger.Sale // by sale
}

// imageHead is the bytes before the first sale's.
const imageHead = len(imageMagic) + 16 + 5*8

// writeImage writes the ledgers in service to the image, at the
// database's point when the store stops; with fewer than min records in
// all (min negative: never) it removes any image instead. The caller has
// stopped every change.
func (s *Store) writeImage(ctx context.Context, min int) error {
	var ls []*ledger.Sale
	recs := 0
	for _, st := range s.sales {
		if st.l.IsDormant() {
			continue
		}
		ls = append(ls, st.l)
		recs += st.l.Records()
	}
	name := filepath.Join(filepath.Dir(s.path), ImageName)
	if min < 0 || recs < min {
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sqlite: remove %s: %w", name, err)
		}
		return nil
	}
	at := imagePoint{lastSettle: s.settles, progress: s.g.progress.Load()}
	if err := at.read(ctx, s.w); err != nil {
		return err
	}
	return s.saveImage(ctx, at, ls)
}

// imagePoint is the point of the database an image shows.
type imagePoint struct {
	lastSeq, lastSettle int64
	// progress and salesMade are the store's progress and the sales the
	// database held then.
	progress, salesMade int64
}

// read sets at's last order and count of sales from db.
func (at *imagePoint) read(ctx context.Context, db source) error {
	var seq sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT (SELECT max(seq) FROM orders), (SELECT count(*) FROM sales)`).Scan(&seq, &at.salesMade); err != nil {
		return fmt.Errorf("sqlite: read the last order: %w", err)
	}
	at.lastSeq = seq.Int64
	return nil
}

// saveImage writes ls, the ledgers of the database at point at, to the
// image (synced, then put in place of any older one), then the token
// that ties it to the database. Nothing else may change ls meanwhile.
func (s *Store) saveImage(ctx context.Context, at imagePoint, ls []*ledger.Sale) error {
	dir := filepath.Dir(s.path)
	name := filepath.Join(dir, ImageName)
	var token [16]byte
	_, _ = rand.Read(token[:]) // crypto/rand.Read never fails
	err := replaceFile(dir, ImageName, func(f *os.File) error {
		sum := crc32.New(castagnoli)
		w := bufio.NewWriterSize(io.MultiWriter(f, sum), 1<<20)
		head := append([]byte(imageMagic), token[:]...)
		for _, v := range []int64{at.lastSeq, at.lastSettle, at.progress, at.salesMade, int64(len(ls))} {
			head = binary.LittleEndian.AppendUint64(head, uint64(v))
		}
		if _, err := w.Write(head); err != nil {
			return err
		}
		for _, l := range ls {
			id := l.Sale().ID
			rec := append(binary.LittleEndian.AppendUint16(nil, uint16(len(id))), id...)
			if _, err := w.Write(binary.LittleEndian.AppendUint64(rec, uint64(l.ImageSize()))); err != nil {
				return err
			}
			if err := l.WriteImage(w); err != nil {
				return err
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
		_, err := f.Write(binary.LittleEndian.AppendUint32(nil, sum.Sum32()))
		return err
	})
	if err != nil {
		return err
	}
	// Only now: a row naming an image not yet durable could outlive it.
	// Not given up halfway: the image in place needs its row.
	if _, err := s.w.ExecContext(context.WithoutCancel(ctx), `INSERT OR REPLACE INTO ledger_image (one, token) VALUES (1, ?)`, token[:]); err != nil {
		return fmt.Errorf("sqlite: record %s: %w", name, err)
	}
	return nil
}

// readImage returns the ledgers of the sales in service held by the
// image in the store's directory, if it is whole and belongs to the
// database; nil if there is none or it does not. It never fails a start:
// without an image, the start replays every order. It reads the file as
// a stream, each ledger straight into its own memory (ledger.ReadImage),
// and checks the CRC at the end.
func (s *Store) readImage(ctx context.Context, sales []surge.Sale) *image {
	name := filepath.Join(filepath.Dir(s.path), ImageName)
	f, err := os.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < int64(imageHead)+4 {
		return nil
	}
	sum := crc32.New(castagnoli)
	r := bufio.NewReaderSize(io.TeeReader(io.LimitReader(f, fi.Size()-4), sum), 1<<20)
	head := make([]byte, imageHead)
	if _, err := io.ReadFull(r, head); err != nil || string(head[:len(imageMagic)]) != imageMagic {
		return nil
	}
	var token []byte
	if err := s.w.QueryRowContext(ctx, `SELECT token FROM ledger_image WHERE one = 1`).Scan(&token); err != nil ||
		string(token) != string(head[8:24]) {
		return nil
	}
	u := func(i int) int64 { return int64(binary.LittleEndian.Uint64(head[24+8*i:])) }
	img := &image{imagePoint{lastSeq: u(0), lastSettle: u(1), progress: u(2), salesMade: u(3)}, map[string]*ledger.Sale{}}
	byID := make(map[string]surge.Sale, len(sales))
	for _, sl := range sales {
		byID[sl.ID] = sl
	}
	var b [8]byte
	for range u(4) {
		if _, err := io.ReadFull(r, b[:2]); err != nil {
			return nil
		}
		id := make([]byte, binary.LittleEndian.Uint16(b[:2]))
		if _, err := io.ReadFull(r, id); err != nil {
			return nil
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil
		}
		size := int64(binary.LittleEndian.Uint64(b[:]))
		sale, ok := byID[string(id)]
		if !ok { // archived since
			if size < 0 || size > fi.Size() {
				return nil
			}
			if _, err := r.Discard(int(size)); err != nil {
				return nil
			}
			continue
		}
		l, err := ledger.ReadImage(sale, r, size)
		if err != nil {
			s.opts.Logger.Warn("the ledger image is damaged; replaying every order", "file", name, "err", err)
			return nil
		}
		img.ledgers[sale.ID] = l
	}
	var tail [4]byte
	if _, err := r.Peek(1); err != io.EOF {
		return nil // more than its sales
	}
	if _, err := f.ReadAt(tail[:], fi.Size()-4); err != nil || sum.Sum32() != binary.LittleEndian.Uint32(tail[:]) {
		s.opts.Logger.Warn("the ledger image fails its checksum; replaying every order", "file", name)
		return nil
	}
	return img
}

// settle is an order's move out of reserved.
type settle struct {
	seq    int64
	id     string
	status surge.OrderStatus
}

// settlesAfter returns the settles numbered after the image's, by sale.
func (s *Store) settlesAfter(ctx context.Context, img *image) (map[string][]settle, error) {
	rows, err := s.w.QueryContext(ctx, `SELECT sale_id, seq, id, status FROM orders WHERE settled > ? ORDER BY settled`, img.lastSettle)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read the settles after the ledger image: %w", err)
	}
	defer rows.Close()
	out := map[string][]settle{}
	for rows.Next() {
		var (
			sale string
			st   settle
		)
		if err := rows.Scan(&sale, &st.seq, &st.id, &st.status); err != nil {
			return nil, fmt.Errorf("sqlite: read the settles after the ledger image: %w", err)
		}
		out[sale] = append(out[sale], st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read the settles after the ledger image: %w", err)
	}
	return out, nil
}

// fromImage makes l, a sale's ledger before any order, the state im
// read from its image, then replays what came after the image: the
// settles of the orders it holds (settles), then the orders after it. It
// reports false, having changed nothing, if a settle finds its order not
// reserved in im: the caller replays every order instead.
func (s *Store) fromImage(ctx context.Context, l, im *ledger.Sale, settles []settle, lastSeq int64, now time.Time) (int, bool, error) {
	im.RaiseCeiling(l.Ceiling())
	for _, st := range settles {
		// A later order comes with its final status from the scan.
		if st.seq <= lastSeq && !im.Settle(st.id, st.status) {
			s.opts.Logger.Warn("the ledger image does not hold an order settled after it reserved; replaying its orders",
				"sale", l.Sale().ID, "order", st.id)
			return 0, false, nil
		}
	}
	n, err := s.restore(ctx, im, now, lastSeq)
	if err != nil {
		return 0, false, err
	}
	// The image keeps the keys the last store kept; a replay keeps those
	// of the window only.
	im.Forget(now.Add(-s.opts.IdempotencyTTL))
	l.Adopt(im)
	return n, true, nil
}

// imageAccounts checks, once the load took sales from img, that the
// database changed since the image by what the load replayed after it
// and nothing else: its progress is the image's plus the sales made, the
// orders and the settles after it. If not (an older version or a hand
// settled orders without numbering them), it loads every sale again
// without the image.
func (s *Store) imageAccounts(ctx context.Context, img *image, progress int64) error {
	var sales, orders, settles int64
	if err := s.w.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM sales), (SELECT count(*) FROM orders WHERE seq > ?),
		(SELECT count(*) FROM orders WHERE settled > ?)`, img.lastSeq, img.lastSettle).Scan(&sales, &orders, &settles); err != nil {
		return fmt.Errorf("sqlite: count the changes after the ledger image: %w", err)
	}
	if img.progress+sales-img.salesMade+orders+settles == progress {
		return nil
	}
	s.opts.Logger.Warn("the ledger image does not account for every change of the database; replaying every order",
		"image", img.progress, "after it", sales-img.salesMade+orders+settles, "database", progress)
	clear(s.sales)
	s.imaged, s.imageRecs = 0, 0
	_, err := s.load(ctx, false)
	return err
}

// sale returns the ledger the image holds for a sale, if it holds one.
func (img *image) sale(id string) (*ledger.Sale, bool) {
	if img == nil {
		return nil, false
	}
	l, ok := img.ledgers[id]
	return l, ok
}

// refreshImage writes an image of the database as it is now, off the
// purchase path, and returns the records it holds: it replays every order
// of the sales in service into ledgers of its own, through one read
// transaction (a snapshot that later commits do not change; a start's
// two connections could not share one), and saves them at that point. It
// costs what a start's replay costs, once, in the background; the starts
// after a crash it spares then replay only what came after it. Sales
// holding fewer than min records in all get no image (an older one
// stays: it is still exact).
func (s *Store) refreshImage(ctx context.Context, min int) (int, error) {
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("sqlite: refresh the ledger image: %w", err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: refresh the ledger image: %w", err)
	}
	defer tx.Rollback()
	// Every read below sees the snapshot the first one starts.
	var at imagePoint
	if err := at.read(ctx, tx); err != nil {
		return 0, err
	}
	if at.lastSettle, err = lastSettle(ctx, tx); err != nil {
		return 0, err
	}
	if at.progress, err = progressOf(ctx, tx); err != nil {
		return 0, fmt.Errorf("sqlite: refresh the ledger image: %w", err)
	}
	sales, err := querySales(ctx, tx, `WHERE id NOT IN (SELECT sale_id FROM archived_sales)`)
	if err != nil {
		return 0, err
	}
	ceil, err := ceilings(ctx, tx)
	if err != nil {
		return 0, err
	}
	now := s.opts.Now()
	var ls []*ledger.Sale
	recs := 0
	for _, sale := range sales {
		l, dormant, err := s.newLedger(ctx, tx, sale, ceil[sale.ID], now)
		if err != nil {
			return 0, err
		}
		if dormant {
			continue
		}
		if _, err := s.restoreJoined(ctx, l, now, 0, tx); err != nil {
			return 0, err
		}
		if err := l.Verify(); err != nil {
			return 0, fmt.Errorf("sqlite: %s: %w", s.path, err)
		}
		ls = append(ls, l)
		recs += l.Records()
	}
	if min < 0 || recs < min {
		return 0, nil
	}
	return recs, s.saveImage(ctx, at, ls)
}

// imager refreshes the image once the store has been idle for a while
// (the checkpointer's idleTruncate) after enough changes since the last
// one: at least ImageMin, and a quarter of the records the last image
// held, so that the replays it costs stay within a few per order. A
// change while it replays gives the refresh up (it is tried again at the
// next idle moment), so a spike is not slowed by it, and a crash after
// the spike replays only what came after it.
func (s *Store) imager(ctx context.Context, min int) {
	defer close(s.imageDone)
	every, idle := cmp.Or(s.opts.checkpointEvery, checkpointInterval), cmp.Or(s.opts.idleAfter, idleTruncate)
	t := time.NewTicker(every)
	defer t.Stop()
	seen, changed := s.g.progress.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p := s.g.progress.Load()
			if p != seen {
				seen, changed = p, now
				continue
			}
			if now.Sub(changed) < idle || p-s.imagedAt < int64(max(min, s.imageRecs/4, 1)) {
				continue
			}
			began := time.Now()
			recs, err := s.refreshWhileIdle(ctx, min, p, every)
			switch {
			case ctx.Err() != nil:
				return
			case errors.Is(err, errBusy):
				continue
			case err != nil:
				s.opts.Logger.Warn("the ledger image was not refreshed", "err", err)
			case recs > 0:
				s.opts.Logger.Info("ledger image refreshed", "orders", recs, "took", time.Since(began).Round(time.Millisecond))
				s.imageRecs = recs
				s.current.Store(p) // refreshWhileIdle saw no change
			}
			// Not again before as many changes more, even after a failure.
			s.imagedAt = p
		}
	}
}

// errBusy is a refresh given up because the store changed meanwhile.
var errBusy = errors.New("the store changed during the refresh")

// refreshWhileIdle is refreshImage given up with errBusy as soon as the
// progress moves from p (checked every every).
func (s *Store) refreshWhileIdle(ctx context.Context, min int, p int64, every time.Duration) (int, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if s.g.progress.Load() != p {
					cancel(errBusy)
					return
				}
			}
		}
	}()
	recs, err := s.refreshImage(ctx, min)
	if err != nil && errors.Is(context.Cause(ctx), errBusy) {
		return 0, errBusy
	}
	return recs, err
}
