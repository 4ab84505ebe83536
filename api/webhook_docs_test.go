package api_test

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestWebhookAnswersDocumented: the payment provider (or whoever runs its
// integration) reads docs/payments.md's table of the webhook's answers,
// and docs/api.md's entry for it, to know which answers to retry. Every
// answer the spec gives POST /v1/payments/webhook, status and error code,
// must be in both; 500 internal, every endpoint's last resort, is left to
// docs/api.md's errors. The table lacked the 413 of a body over 256 KiB,
// the 429 of a bad signature over the address's limit, the 503 overloaded
// of 1,024 payments waiting and the 404 of a server without the webhook,
// and docs/api.md the 429.
func TestWebhookAnswersDocumented(t *testing.T) {
	_, doc := readSpec(t)
	op, ok := doc.Paths["/v1/payments/webhook"]["post"].(map[string]any)
	if !ok {
		t.Fatalf("%s has no POST /v1/payments/webhook", specFile)
	}
	refs, _ := doc.Components["responses"].(map[string]any)
	answers := map[string][]string{} // status → error codes, none for a success
	for status, resp := range op["responses"].(map[string]any) {
		if m, ok := resp.(map[string]any); ok {
			if ref, ok := m["$ref"].(string); ok {
				resp = refs[strings.TrimPrefix(ref, "#/components/responses/")]
			}
		}
		codes := map[string]bool{}
		collectCodes(resp, codes)
		answers[status] = slices.Sorted(maps.Keys(codes))
	}
	if len(answers) < 8 {
		t.Fatalf("read only the answers %v of the webhook in %s", answers, specFile)
	}
	table := docSection(t, "../docs/payments.md", "### Answers", "### ")
	var documented []string // the table's answers: "200", "422 amount_mismatch"
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		for _, m := range regexp.MustCompile("`([0-9]{3}(?: [a-z_]+)?)`").FindAllStringSubmatch(cells[2], -1) {
			documented = append(documented, m[1])
		}
	}
	entry := docSection(t, "../docs/api.md", "### `POST /v1/payments/webhook`", "### ")
	for status, codes := range answers {
		if status == "500" {
			continue
		}
		if len(codes) == 0 && !slices.Contains(documented, status) {
			t.Errorf("docs/payments.md's table of answers lacks %s, which %s gives the webhook", status, specFile)
		}
		for _, c := range codes {
			answer := status + " " + c
			if !slices.Contains(documented, answer) {
				t.Errorf("docs/payments.md's table of answers lacks `%s`, which %s gives the webhook", answer, specFile)
			}
			if !strings.Contains(entry, "`"+answer+"`") {
				t.Errorf("docs/api.md's entry for the webhook lacks `%s`, which %s gives it", answer, specFile)
			}
		}
	}
}

// docSection is the text of file from the line beginning with start to the
// next line beginning with end (or the end of the file).
func docSection(t *testing.T, file, start, end string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut("\n"+string(b), "\n"+start)
	if !ok {
		t.Fatalf("%s has no line beginning %q", file, start)
	}
	if i := strings.Index(after, "\n"+end); i >= 0 {
		after = after[:i]
	}
	return start + after
}
