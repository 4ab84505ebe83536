// Package client is a small Go client for Surge's HTTP API, used by the
// command line and by tools that drive a running server. It sends and
// reads the objects declared in package api.
package client

import (
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
	"time"

	"github.com/surgehq/surge/api"
)

// Client talks to one Surge server.
type Client struct {
	BaseURL    string // e.g. http://127.0.0.1:8080
	AdminToken string
	HTTP       *http.Client
}

// New returns a client for baseURL with a 30 s request timeout.
func New(baseURL, adminToken string) *Client {
	return &Client{
		BaseURL:    strings.TrimRight(baseURL, "/"),
		AdminToken: adminToken,
		HTTP:       &http.Client{Timeout: 30 * time.Second},
	}
}

// ErrNoAdminToken is returned, before anything is sent, by a call that
// needs the admin token when the client has none.
var ErrNoAdminToken = errors.New("no admin token")

// APIError is an error answer of the API.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// CreateSale creates a sale (admin).
func (c *Client) CreateSale(ctx context.Context, s api.NewSale) (api.Sale, error) {
	var out api.Sale
	err := c.do(ctx, http.MethodPost, "/v1/sales", true, s, &out)
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
	err = c.do(ctx, http.MethodGet, path, false, nil, &out)
	return out.Sales, out.NextCursor, err
}

// ArchiveSale takes an ended sale out of service (admin); archiving an
// archived sale answers it again.
func (c *Client) ArchiveSale(ctx context.Context, id string) (api.Sale, error) {
	var out api.Sale
	err := c.do(ctx, http.MethodPost, "/v1/sales/"+url.PathEscape(id)+"/archive", true, nil, &out)
	return out, err
}

// UpdateSale steers a sale in service (admin): the fields p sets change,
// the others stay.
func (c *Client) UpdateSale(ctx context.Context, id string, p api.SalePatch) (api.Sale, error) {
	var out api.Sale
	err := c.do(ctx, http.MethodPatch, "/v1/sales/"+url.PathEscape(id), true, p, &out)
	return out, err
}

// Sale fetches one sale.
func (c *Client) Sale(ctx context.Context, id string) (api.Sale, error) {
	var out api.Sale
	err := c.do(ctx, http.MethodGet, "/v1/sales/"+url.PathEscape(id), false, nil, &out)
	return out, err
}

// Orders streams every order of a sale from the admin export to fn.
func (c *Client) Orders(ctx context.Context, saleID string, fn func(api.Order) error) error {
	req, err := c.request(ctx, http.MethodGet, "/v1/sales/"+url.PathEscape(saleID)+"/orders", true, nil)
	if err != nil {
		return err
	}
	// Exports can be long; the per-request timeout does not apply.
	hc := *c.HTTP
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var o api.Order
		if err := dec.Decode(&o); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read export: %w", err)
		}
		if err := fn(o); err != nil {
			return err
		}
	}
}

func (c *Client) request(ctx context.Context, method, path string, admin bool, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if admin {
		if c.AdminToken == "" {
			return nil, fmt.Errorf("%s %s: %w", method, path, ErrNoAdminToken)
		}
		req.Header.Set("Authorization", "Bearer "+c.AdminToken)
	}
	return req, nil
}

func (c *Client) do(ctx context.Context, method, path string, admin bool, body, out any) error {
	req, err := c.request(ctx, method, path, admin, body)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

func decodeError(resp *http.Response) error {
	var e api.ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
		return &APIError{Status: resp.StatusCode, Code: "http_error", Message: strings.TrimSpace(string(b))}
	}
	return &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
}
