package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/surgehq/surge/api"
)

// CreateSale creates a sale (admin). It is retried only on refusals that
// created nothing (429, 503 overloaded): after a 503 unavailable the sale
// may exist, and a second create would answer 409 sale_exists.
func (c *Client) CreateSale(ctx context.Context, s api.NewSale) (api.Sale, error) {
	var out api.Sale
	cl, err := c.newCall(http.MethodPost, "/v1/sales", admin, s)
	if err != nil {
		return out, err
	}
	cl.safety = once
	_, err = c.do(ctx, cl, &out)
	return out, err
}

// Sales lists every sale not archived, oldest first, following the
// listing's cursors page by page.
func (c *Client) Sales(ctx context.Context) ([]api.Sale, error) { return c.allSales(ctx, false) }

// ArchivedSales lists every archived sale, oldest first.
func (c *Client) ArchivedSales(ctx context.Context) ([]api.Sale, error) { return c.allSales(ctx, true) }

func (c *Client) allSales(ctx context.Context, archived bool) ([]api.Sale, error) {
	var all []api.Sale
	cursor := ""
	for {
		page, next, err := c.SalesPage(ctx, archived, cursor, 0)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		if next == cursor || len(page) == 0 {
			// A server that does not move on would loop forever.
			return nil, fmt.Errorf("list sales: the server answered an empty page or the same cursor again")
		}
		cursor = next
	}
}

// SalesPage reads one page of the listing: after cursor ("" for the
// first page), at most limit sales (0: the server's default). next is ""
// on the last page.
func (c *Client) SalesPage(ctx context.Context, archived bool, cursor string, limit int) (page []api.Sale, next string, err error) {
	q := url.Values{}
	if archived {
		q.Set("archived", "true")
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/sales"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out api.SalesPage
	cl, _ := c.newCall(http.MethodGet, path, anyone, nil)
	_, err = c.do(ctx, cl, &out)
	return out.Sales, out.NextCursor, err
}

// Sale fetches one sale.
func (c *Client) Sale(ctx context.Context, id string) (api.Sale, error) {
	var out api.Sale
	cl, err := c.idCall(http.MethodGet, "sale", id, "", anyone, nil)
	if err != nil {
		return out, err
	}
	_, err = c.do(ctx, cl, &out)
	return out, err
}

// UpdateSale steers a sale in service (admin): the fields p sets change,
// the others stay. Setting the same fields twice changes nothing more,
// so every refusal is retried.
func (c *Client) UpdateSale(ctx context.Context, id string, p api.SalePatch) (api.Sale, error) {
	var out api.Sale
	cl, err := c.idCall(http.MethodPatch, "sale", id, "", admin, p)
	if err != nil {
		return out, err
	}
	_, err = c.do(ctx, cl, &out)
	return out, err
}

// ArchiveSale takes an ended sale, or one yet to start (calling it off),
// out of service (admin); archiving an archived sale answers it again.
func (c *Client) ArchiveSale(ctx context.Context, id string) (api.Sale, error) {
	var out api.Sale
	cl, err := c.idCall(http.MethodPost, "sale", id, "/archive", admin, nil)
	if err != nil {
		return out, err
	}
	_, err = c.do(ctx, cl, &out)
	return out, err
}

// Orders streams every order of a sale from the admin export to fn, in
// creation order; an error of fn ends the export and is returned. An
// export the server cut short is an error, never a shorter list, and so
// is one from a server that sends nothing for 35 s (the time fn takes is
// not counted): the export has no timeout of its own.
func (c *Client) Orders(ctx context.Context, saleID string, fn func(api.Order) error) error {
	cl, err := c.idCall(http.MethodGet, "sale", saleID, "/orders", admin, nil)
	if err != nil {
		return err
	}
	// Exports can be long: no per-request timeout, but no endless
	// silence either.
	cl.stream, cl.silence = true, c.silence()
	resp, err := c.send(ctx, cl)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := c.notJSON(cl, resp); err != nil {
		return err
	}
	// One order a line (NDJSON), each read within maxExportLine: the
	// stream has no timeout, and a server sending an endless line must
	// not have it buffered whole.
	rd := bufio.NewReaderSize(resp.Body, maxExportLine)
	for {
		line, err := rd.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return fmt.Errorf("read export: an order larger than %d KiB, not Surge's", maxExportLine>>10)
		}
		if err == io.EOF {
			if len(bytes.TrimSpace(line)) == 0 {
				return nil
			}
			// A last line without its newline: Surge ends every order
			// with one, so the export was cut, also where what came
			// parses (a cut right after an order's closing brace,
			// which a proxy relaying the export ended cleanly).
			return fmt.Errorf("read export: %w", io.ErrUnexpectedEOF)
		}
		if err != nil {
			return fmt.Errorf("read export: %w", err)
		}
		if len(bytes.TrimSpace(line)) > 0 {
			var o api.Order
			if derr := json.Unmarshal(line, &o); derr != nil {
				return fmt.Errorf("read export: %w", derr)
			}
			if ferr := fn(o); ferr != nil {
				return ferr
			}
		}
	}
}

// maxExportLine bounds one order of the export (a line is about 300
// bytes).
const maxExportLine = 1 << 20

// PayOrder settles an order by hand (admin): it becomes paid and a manual
// payment of its amount is recorded. Retried only on refusals that paid
// nothing (429, 503 overloaded): paying a paid order answers 409.
func (c *Client) PayOrder(ctx context.Context, id string) (api.Order, error) {
	return c.orderCall(ctx, http.MethodPost, id, "/pay", admin, once)
}

// ErrEmptyID is returned, before anything is sent, by a call given an
// empty sale or order id (an unset variable): its path would name no
// endpoint, answered 404 not_found "no such endpoint", which says
// nothing of the id and matches no sentinel.
var ErrEmptyID = errors.New("empty id")

// idCall is newCall for the path /v1/<kind>s/<id><rest>, refusing an
// empty id.
func (c *Client) idCall(method, kind, id, rest string, w who, body any) (*call, error) {
	if id == "" {
		return nil, fmt.Errorf("%s /v1/%ss/{id}%s: %w: the %s id is required, nothing was sent", method, kind, rest, ErrEmptyID, kind)
	}
	return c.newCall(method, "/v1/"+kind+"s/"+segment(id)+rest, w, body)
}

// segment is id as one path segment. "." and ".." are escaped, as
// url.PathEscape leaves them: as they are, the server (and a proxy)
// reads them as a relative path, and answers no such endpoint rather
// than no such sale or order.
func segment(id string) string {
	if id == "." || id == ".." {
		return strings.Repeat("%2E", len(id))
	}
	return url.PathEscape(id)
}
