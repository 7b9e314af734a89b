package validate

import (
	"errors"
	"strings"
	"testing"

	"github.com/reconcile/reconcile/internal/model"
)

const goodKey = "abcdEFGH12345678" // 16 characters

func TestRow(t *testing.T) {
	ok := model.Row{Domain: "live.example.com", NotifyURL: "https://hooks.example.com/snap"}
	with := func(f func(r *model.Row)) model.Row { r := ok; f(&r); return r }
	tests := []struct {
		name      string
		row       model.Row
		field     string // "" = valid
		reasonHas string
	}{
		{"valid", ok, "", ""},
		{"valid with auth", with(func(r *model.Row) { r.ReqAuth = true; r.AuthKey = goodKey }), "", ""},
		{"valid 32-char key", with(func(r *model.Row) { r.ReqAuth = true; r.AuthKey = model.Secret(strings.Repeat("a", 32)) }), "", ""},
		{"valid 500-char url", with(func(r *model.Row) { r.NotifyURL = "https://h.example.com/" + strings.Repeat("a", 500-22) }), "", ""},
		{"valid region", with(func(r *model.Row) { r.Region = "ap-southeast-1" }), "", ""},
		{"empty url", with(func(r *model.Row) { r.NotifyURL = "" }), "notify_url", "is empty"},
		{"501-char url", with(func(r *model.Row) { r.NotifyURL = "https://h.example.com/" + strings.Repeat("a", 501-22) }), "notify_url", "longer than 500 characters (501)"},
		{"10 KB url", with(func(r *model.Row) { r.NotifyURL = "https://h.example.com/" + strings.Repeat("a", 10240) }), "notify_url", "longer than 500"},
		{"overlong url multibyte", with(func(r *model.Row) { r.NotifyURL = "https://h.example.com/" + strings.Repeat("é", 479) }), "notify_url", "(501)"},
		{"non-http url", with(func(r *model.Row) { r.NotifyURL = "ftp://h.example.com/x" }), "notify_url", `scheme "ftp"`},
		{"javascript url", with(func(r *model.Row) { r.NotifyURL = "javascript:alert(1)" }), "notify_url", `scheme "javascript"`},
		{"file url", with(func(r *model.Row) { r.NotifyURL = "file:///etc/passwd" }), "notify_url", `scheme "file"`},
		{"no scheme", with(func(r *model.Row) { r.NotifyURL = "hooks.example.com/snap" }), "notify_url", "no scheme"},
		{"url with credentials", with(func(r *model.Row) { r.NotifyURL = "https://user:pw@h.example.com/" }), "notify_url", "credentials"},
		{"url without host", with(func(r *model.Row) { r.NotifyURL = "https:///path" }), "notify_url", "no host"},
		{"url with space", with(func(r *model.Row) { r.NotifyURL = "https://h.example.com/a b" }), "notify_url", "spaces"},
		{"url with control char", with(func(r *model.Row) { r.NotifyURL = "https://h.example.com/\x01" }), "notify_url", "control"},
		{"url invalid utf8", with(func(r *model.Row) { r.NotifyURL = "https://h.example.com/\xff" }), "notify_url", "UTF-8"},
		{"req auth without key", with(func(r *model.Row) { r.ReqAuth = true }), "notify_auth_key", "required when notify_req_auth"},
		{"15-char key", with(func(r *model.Row) { r.ReqAuth = true; r.AuthKey = model.Secret(strings.Repeat("k", 15)) }), "notify_auth_key", "16 to 32 characters long (it has 15)"},
		{"33-char key", with(func(r *model.Row) { r.ReqAuth = true; r.AuthKey = model.Secret(strings.Repeat("k", 33)) }), "notify_auth_key", "(it has 33)"},
		{"non-alnum key", with(func(r *model.Row) { r.ReqAuth = true; r.AuthKey = "abcdEFGH1234567!" }), "notify_auth_key", "only letters and digits"},
		{"key without req auth still checked", with(func(r *model.Row) { r.AuthKey = "short" }), "notify_auth_key", "16 to 32"},
		{"empty domain", with(func(r *model.Row) { r.Domain = "" }), "domain_name", "is empty"},
		{"upper-case domain", with(func(r *model.Row) { r.Domain = "Live.Example.com" }), "domain_name", "upper-case"},
		{"IDN domain", with(func(r *model.Row) { r.Domain = "直播.example.com" }), "domain_name", "punycode"},
		{"domain invalid utf8", with(func(r *model.Row) { r.Domain = "a\xffb.com" }), "domain_name", "UTF-8"},
		{"domain control char", with(func(r *model.Row) { r.Domain = "a\nb.com" }), "domain_name", "control"},
		{"domain one label", with(func(r *model.Row) { r.Domain = "localhost" }), "domain_name", "two labels"},
		{"domain as url", with(func(r *model.Row) { r.Domain = "https://live.example.com" }), "domain_name", "bare host name"},
		{"domain with port", with(func(r *model.Row) { r.Domain = "live.example.com:80" }), "domain_name", "bare host name"},
		{"domain ip", with(func(r *model.Row) { r.Domain = "10.0.0.1" }), "domain_name", "IP address"},
		{"domain double dot", with(func(r *model.Row) { r.Domain = "a..example.com" }), "domain_name", "empty label"},
		{"domain hyphen", with(func(r *model.Row) { r.Domain = "-a.example.com" }), "domain_name", "hyphen"},
		{"domain underscore", with(func(r *model.Row) { r.Domain = "a_b.example.com" }), "domain_name", "character other than"},
		{"domain spaces", with(func(r *model.Row) { r.Domain = " a.example.com" }), "domain_name", "spaces"},
		{"domain too long", with(func(r *model.Row) { r.Domain = strings.Repeat("a.", 130) + "com" }), "domain_name", "longer than 253"},
		{"domain long label", with(func(r *model.Row) { r.Domain = strings.Repeat("a", 64) + ".com" }), "domain_name", "longer than 63"},
		{"bad region", with(func(r *model.Row) { r.Region = "CN Shanghai" }), "region_id", "a-z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Row(tt.row)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Row() = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Row() = %v, want a *FieldError on %s", err, tt.field)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Reason, tt.reasonHas) {
				t.Fatalf("Row() = field %q reason %q, want field %q reason containing %q", fe.Field, fe.Reason, tt.field, tt.reasonHas)
			}
			if fe.Code() != "Invalid."+tt.field {
				t.Fatalf("Code() = %q", fe.Code())
			}
			if k := tt.row.AuthKey.Reveal(); k != "" && strings.Contains(err.Error(), k) {
				t.Fatalf("error text %q contains the auth key", err)
			}
		})
	}
}

func FuzzRow(f *testing.F) {
	f.Add("live.example.com", "https://h.example.com/x", true, goodKey, "cn-shanghai")
	f.Add("Live.EXAMPLE.com", "javascript:alert(1)", false, "", "")
	f.Add("\xff\xfe", "http://u:p@h/", true, "abc", "\x00")
	f.Fuzz(func(t *testing.T, domain, u string, reqAuth bool, key, region string) {
		r := model.Row{Domain: domain, NotifyURL: u, ReqAuth: reqAuth, AuthKey: model.Secret(key), Region: region}
		err := Row(r)
		if err == nil {
			return
		}
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("error %v is not a *FieldError", err)
		}
		if len(key) >= 4 && strings.Contains(fe.Reason, key) {
			t.Fatalf("reason %q contains the key", fe.Reason)
		}
	})
}
