package discovery

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePins(t *testing.T) {
	t.Parallel()
	const hex64 = "3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a"
	tests := []struct {
		name    string
		pins    []string
		want    []string
		wantErr []string
	}{
		{name: "none", pins: nil, want: []string{}},
		{name: "one", pins: []string{"sha256:" + hex64}, want: []string{"sha256:" + hex64}},
		{name: "canonicalized", pins: []string{"SHA256:" + strings.ToUpper(hex64)}, want: []string{"sha256:" + hex64}},
		{name: "no format", pins: []string{hex64}, wantErr: []string{`invalid CA pin "` + hex64 + `"`, `expected "sha256:<64 hex digits>"`}},
		{name: "unknown format", pins: []string{"md5:" + hex64}, wantErr: []string{`unknown hash format "md5"`}},
		{name: "too short", pins: []string{"sha256:abcd"}, wantErr: []string{"expected a 32-byte SHA-256 hash", "found 2 bytes"}},
		{name: "not hex", pins: []string{"sha256:" + strings.Repeat("zz", 32)}, wantErr: []string{"the hash is not hex"}},
		{name: "extra colon", pins: []string{"sha256:" + hex64 + ":x"}, wantErr: []string{"expected"}},
		{name: "second pin bad", pins: []string{"sha256:" + hex64, "sha256:"}, wantErr: []string{`invalid CA pin "sha256:"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePins(tt.pins)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("ParsePins(%q) = %q, want an error", tt.pins, got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") || len(got) != len(tt.want) {
				t.Errorf("ParsePins(%q) = %q, want %q", tt.pins, got, tt.want)
			}
		})
	}
}

func TestCheckPins(t *testing.T) {
	t.Parallel()
	ca, other := newTestCA(t, "kubernetes"), newTestCA(t, "other")
	if err := CheckPins(ca.Cert, []string{other.pin(), ca.pin()}); err != nil {
		t.Errorf("matching pin: %v", err)
	}
	err := CheckPins(ca.Cert, []string{other.pin()})
	if !errors.Is(err, ErrPinMismatch) || !strings.Contains(err.Error(), "its hash is "+ca.pin()) {
		t.Errorf("mismatch error = %v", err)
	}
	if err := CheckPins(ca.Cert, nil); !errors.Is(err, ErrNoPins) {
		t.Errorf("no pins error = %v", err)
	}
	if err := CheckPins(ca.Cert, []string{"sha1:abc"}); err == nil || !strings.Contains(err.Error(), `"sha1:abc"`) {
		t.Errorf("malformed pin error = %v", err)
	}
}
