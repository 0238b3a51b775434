package bootstraptoken

import (
	"bytes"
	"github.com/kubeboot/kubeboot/test/golden"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     Token
		wantErr  bool
	}{
		{name: "valid", in: "abcdef.0123456789abcdef", want: Token{ID: "abcdef", Secret: "0123456789abcdef"}},
		{name: "digits only", in: "012345.0123456789012345", want: Token{ID: "012345", Secret: "0123456789012345"}},
		{name: "empty", in: "", wantErr: true},
		{name: "upper case", in: "ABCDEF.s3cr3ts3cr3ts3cr", wantErr: true},
		{name: "short id", in: "abcde.s3cr3ts3cr3ts3cr", wantErr: true},
		{name: "long secret", in: "abcdef.s3cr3ts3cr3ts3cr0", wantErr: true},
		{name: "colon separator", in: "abcdef:s3cr3ts3cr3ts3cr", wantErr: true},
		{name: "no separator", in: "abcdefs3cr3ts3cr3ts3cr", wantErr: true},
		{name: "trailing newline", in: "abcdef.s3cr3ts3cr3ts3cr\n", wantErr: true},
		{name: "leading space", in: " abcdef.s3cr3ts3cr3ts3cr", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want an error", tt.in, got)
				}
				if !strings.Contains(err.Error(), Format) {
					t.Errorf("error %q does not give the expected format %s", err, Format)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Errorf("error %q repeats the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestStringOfIncompleteToken(t *testing.T) {
	t.Parallel()
	for _, tok := range []Token{{}, {ID: "abcdef"}, {Secret: "0123456789abcdef"}} {
		if s := tok.String(); s != "" {
			t.Errorf("%+v.String() = %q, want \"\"", tok, s)
		}
	}
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 20 {
		tok, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(tok.String()); err != nil {
			t.Fatalf("generated token does not parse: %v", err)
		}
		if seen[tok.ID] {
			t.Fatalf("token ID %s generated twice", tok.ID)
		}
		seen[tok.ID] = true
	}
}

var (
	testToken = Token{ID: "abcdef", Secret: "0123456789abcdef"}
	testNow   = time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
)

func TestSecret(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.Description = "joins workers"
	s, err := Secret(testToken, o, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "bootstrap-token-abcdef" || s.Namespace != metav1.NamespaceSystem {
		t.Errorf("Secret is %s/%s, want kube-system/bootstrap-token-abcdef", s.Namespace, s.Name)
	}
	if s.Type != corev1.SecretType("bootstrap.kubernetes.io/token") {
		t.Errorf("type = %q", s.Type)
	}
	want := map[string]string{
		"token-id":                       "abcdef",
		"token-secret":                   "0123456789abcdef",
		"expiration":                     "2025-03-05T04:06:07Z", // now+24h, in UTC
		"usage-bootstrap-signing":        "true",
		"usage-bootstrap-authentication": "true",
		"auth-extra-groups":              "system:bootstrappers:kubeadm:default-node-token",
		"description":                    "joins workers",
	}
	if got := stringData(s); !reflect.DeepEqual(got, want) {
		t.Errorf("data = %v\nwant %v", got, want)
	}

	info, err := FromSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	exp := testNow.Add(24 * time.Hour)
	if info.Expires == nil || !info.Expires.Equal(exp) {
		t.Errorf("Expires = %v, want %v", info.Expires, exp)
	}
	info.Expires = nil
	wantInfo := Info{
		Token:       testToken,
		Description: "joins workers",
		Usages:      []string{"authentication", "signing"},
		Groups:      []string{DefaultGroup},
	}
	if !reflect.DeepEqual(info, wantInfo) {
		t.Errorf("FromSecret = %+v\nwant %+v", info, wantInfo)
	}
}

func TestSecretOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		o    Options
		want map[string]string
		info Info
	}{
		{
			name: "zero options: never expires, kubeadm's default usages and group",
			o:    Options{},
			want: map[string]string{
				"token-id": "abcdef", "token-secret": "0123456789abcdef",
				"usage-bootstrap-signing": "true", "usage-bootstrap-authentication": "true",
				"auth-extra-groups": DefaultGroup,
			},
			info: Info{Token: testToken, Usages: []string{"authentication", "signing"}, Groups: []string{DefaultGroup}},
		},
		{
			name: "signing only has no groups",
			o:    Options{TTL: time.Hour, Usages: []string{"signing"}},
			want: map[string]string{
				"token-id": "abcdef", "token-secret": "0123456789abcdef",
				"expiration": "2025-03-04T05:06:07Z", "usage-bootstrap-signing": "true",
			},
			info: Info{Token: testToken, Usages: []string{"signing"}},
		},
		{
			name: "several groups keep their order",
			o: Options{Usages: []string{"authentication"}, Groups: []string{
				"system:bootstrappers:z", "system:bootstrappers:a:b-c",
			}},
			want: map[string]string{
				"token-id": "abcdef", "token-secret": "0123456789abcdef",
				"usage-bootstrap-authentication": "true",
				"auth-extra-groups":              "system:bootstrappers:z,system:bootstrappers:a:b-c",
			},
			info: Info{Token: testToken, Usages: []string{"authentication"}, Groups: []string{"system:bootstrappers:z", "system:bootstrappers:a:b-c"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Secret(testToken, tt.o, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if got := stringData(s); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("data = %v\nwant %v", got, tt.want)
			}
			info, err := FromSecret(s)
			if err != nil {
				t.Fatal(err)
			}
			info.Expires = nil
			if !reflect.DeepEqual(info, tt.info) {
				t.Errorf("FromSecret = %+v\nwant %+v", info, tt.info)
			}
		})
	}
}

func TestSecretValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		token Token
		o     Options
		want  []string // substrings of the error
	}{
		{name: "bad token ID", token: Token{ID: "ABCDEF", Secret: "0123456789abcdef"}, o: DefaultOptions(), want: []string{"token ID", `"ABCDEF"`}},
		{name: "bad token secret", token: Token{ID: "abcdef", Secret: "short"}, o: DefaultOptions(), want: []string{Format}},
		{name: "unknown usage", token: testToken, o: Options{Usages: []string{"signing", "everything"}}, want: []string{"invalid bootstrap token usage string: everything", "signing,authentication"}},
		{name: "group outside system:bootstrappers", token: testToken, o: Options{Groups: []string{"system:masters"}}, want: []string{`"system:masters"`, "system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]"}},
		{name: "group ending in colon", token: testToken, o: Options{Groups: []string{"system:bootstrappers:"}}, want: []string{`bootstrap group "system:bootstrappers:" is invalid`}},
		{name: "upper-case group", token: testToken, o: Options{Groups: []string{"system:bootstrappers:Workers"}}, want: []string{"system:bootstrappers:Workers"}},
		{name: "groups without authentication", token: testToken, o: Options{Usages: []string{"signing"}, Groups: []string{DefaultGroup}}, want: []string{"cannot be specified unless the usages include \"authentication\""}},
		{name: "negative TTL", token: testToken, o: Options{TTL: -time.Second}, want: []string{"invalid token TTL -1s"}},
		{name: "several problems on one line", token: testToken, o: Options{TTL: -time.Second, Usages: []string{"x"}}, want: []string{"TTL", "; invalid bootstrap token usage string: x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Secret(tt.token, tt.o, testNow)
			if err == nil {
				t.Fatalf("Secret = %v, want an error", stringData(s))
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestFromSecretErrors(t *testing.T) {
	t.Parallel()
	good, err := Secret(testToken, DefaultOptions(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*corev1.Secret)
		want   string
	}{
		{name: "no token-id", mutate: func(s *corev1.Secret) { delete(s.Data, "token-id") }, want: "has no token-id data"},
		{name: "name does not match the ID", mutate: func(s *corev1.Secret) { s.Name = "bootstrap-token-zzzzzz" }, want: `expected "bootstrap-token-abcdef"`},
		{name: "no token-secret", mutate: func(s *corev1.Secret) { delete(s.Data, "token-secret") }, want: "has no token-secret data"},
		{name: "malformed secret", mutate: func(s *corev1.Secret) { s.Data["token-secret"] = []byte("nope") }, want: "is invalid"},
		{name: "bad expiration", mutate: func(s *corev1.Secret) { s.Data["expiration"] = []byte("tomorrow") }, want: "cannot parse the expiration time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := good.DeepCopy()
			tt.mutate(s)
			if _, err := FromSecret(s); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("FromSecret error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestFromSecretIgnoresFalseUsages(t *testing.T) {
	t.Parallel()
	s, err := Secret(testToken, DefaultOptions(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	s.Data["usage-bootstrap-signing"] = []byte("false")
	info, err := FromSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(info.Usages, []string{"authentication"}) {
		t.Errorf("Usages = %v, want [authentication]", info.Usages)
	}
}

func TestFormatTable(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 4, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { e := now.Add(d); return &e }
	infos := []Info{
		{
			Token:   Token{ID: "abcdef", Secret: "0123456789abcdef"},
			Expires: at(23*time.Hour + 59*time.Minute), Description: "The default bootstrap token generated by 'kubeadm init'.",
			Usages: []string{"authentication", "signing"}, Groups: []string{DefaultGroup},
		},
		{Token: Token{ID: "forevr", Secret: "0123456789abcdef"}, Usages: []string{"signing"}},
		{Token: Token{ID: "expird", Secret: "0123456789abcdef"}, Expires: at(-time.Hour), Usages: []string{"authentication"}, Groups: []string{"system:bootstrappers:a", "system:bootstrappers:b"}},
		{Token: Token{ID: "soon00", Secret: "0123456789abcdef"}, Expires: at(90 * time.Second), Description: "short"},
	}
	var buf bytes.Buffer
	if err := FormatTable(&buf, infos, now); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "token-list.golden", buf.Bytes())

	buf.Reset()
	if err := FormatTable(&buf, nil, now); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("no tokens printed %q, want nothing (as kubeadm)", buf.String())
	}
}

// TestFormatTableFromSecret checks the path `token list` takes: Secret,
// FromSecret, FormatTable.
func TestFormatTableFromSecret(t *testing.T) {
	t.Parallel()
	s, err := Secret(testToken, DefaultOptions(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	info, err := FromSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := FormatTable(&buf, []Info{info}, testNow); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want header and one row:\n%s", len(lines), buf.String())
	}
	for _, f := range []string{"abcdef.0123456789abcdef", "1d", "2025-03-05T04:06:07Z", "authentication,signing", "<none>", DefaultGroup} {
		if !strings.Contains(lines[1], f) {
			t.Errorf("row %q lacks %q", lines[1], f)
		}
	}
}

func stringData(s *corev1.Secret) map[string]string {
	m := map[string]string{}
	for k, v := range s.Data {
		m[k] = string(v)
	}
	return m
}

// golden compares got with testdata/name, rewriting it with -update.
