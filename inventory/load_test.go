package inventory

import (
	"bytes"
	"errors"
	"github.com/kubeboot/kubeboot/test/golden"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// golden compares got with testdata/name, or writes it with -update.

func TestLoadValid(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid-*.yaml")
	if len(files) < 7 {
		t.Fatalf("only %d valid fixtures", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			// Loaded configurations marshal and load back to themselves.
			b, err := Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := Parse("marshaled", b)
			if err != nil {
				t.Fatalf("Parse(Marshal):\n%v\n%s", err, b)
			}
			SetDefaults(c2)
			if err := Validate(c2); err != nil {
				t.Fatalf("Validate(Parse(Marshal)): %v", err)
			}
			c.src, c2.src = nil, nil
			if !reflect.DeepEqual(c, c2) {
				t.Errorf("round trip changed the configuration:\n%+v\n%+v", c, c2)
			}
		})
	}
}

func TestLoadValidFields(t *testing.T) {
	c, err := Load("testdata/valid-full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.EncryptionAlgorithm != ECDSAP256 || c.CertificateValidityPeriod.Hours() != 4380 ||
		c.Networking.DNSDomain != "prod.example" || c.Etcd.Local.ExtraArgs["auto-compaction-retention"] != "8" ||
		len(*c.Node.Taints) != 2 || c.HostSSH(1, "", "/h").Port != 22 || c.HostSSH(0, "", "/h").KeyFile != "/h/.ssh/id_ed25519" ||
		c.HostSSH(1, "", "/h").User != "admin" || c.HostSSH(1, "", "/h").Sudo.Mode != SudoPassword || c.HostSSH(2, "", "/h").Port != 2222 ||
		c.HostSSH(2, "", "/h").Bastion.User != "jump" || c.HostSSH(2, "", "/h").Bastion.Port != 22 || !c.Hosts[1].IsControlPlane() || c.Hosts[1].NodeIP() != "192.168.0.12" {
		t.Errorf("unexpected configuration: %+v", c)
	}
	// Taints: absent is nil (the role's default), [] is none.
	c, err = Parse("t.yaml", []byte("apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\nnode:\n  taints: []\n"))
	if err != nil || c.Node.Taints == nil || len(*c.Node.Taints) != 0 {
		t.Errorf("taints: [] = %v, %v", c.Node.Taints, err)
	}
	b, _ := Marshal(c)
	if !strings.Contains(string(b), "taints: []") {
		t.Errorf("an empty taint list is not kept:\n%s", b)
	}
}

// Every invalid-*.yaml has its expected error, exactly, in invalid-*.err.
func TestLoadInvalid(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid-*.yaml")
	if len(files) < 17 {
		t.Fatalf("only %d invalid fixtures", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f)
			if err == nil {
				t.Fatal("no error")
			}
			var fe FieldErrors
			if !errors.As(err, &fe) {
				t.Fatalf("%T is not FieldErrors: %v", err, err)
			}
			for _, e := range fe {
				if e.File != f || !strings.HasPrefix(e.Error(), f+":") {
					t.Errorf("error does not name the file: %v", e)
				}
			}
			if base := filepath.Base(f); base != "invalid-empty.yaml" {
				if fe[0].Line == 0 || fe[0].Field == "" && !strings.Contains(fe[0].Msg, "unknown field") && !strings.Contains(fe[0].Msg, "YAML") {
					t.Errorf("first error has no line or field: %#v", fe[0])
				}
			}
			golden.Check(t, strings.TrimSuffix(filepath.Base(f), ".yaml")+".err", []byte(err.Error()+"\n"))
		})
	}
}

func TestDefaultsGolden(t *testing.T) {
	b, err := Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "defaults.golden.yaml", b)
	if bytes.Contains(b, []byte("\t")) || !bytes.Contains(b, []byte("\n  podSubnet: 10.244.0.0/16\n")) {
		t.Errorf("not 2-space indented:\n%s", b)
	}

	// Round trip: the printed defaults parse, validate and are the defaults.
	c, err := Parse("defaults.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	SetDefaults(c)
	if err := Validate(c); err != nil {
		t.Fatal(err)
	}
	c.src = nil
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("round trip: %+v\nwant %+v", c, Default())
	}
	b2, _ := Marshal(c)
	if !bytes.Equal(b, b2) {
		t.Errorf("marshal is not stable:\n%s\n%s", b, b2)
	}
}

func TestParseErrors(t *testing.T) {
	const head = "apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"empty", "", `c.yaml: the file is empty; a kubeboot configuration starts with apiVersion: kubeboot.io/v1alpha1 and kind: Cluster (kubeboot config print-defaults prints one)`},
		{"only a separator", "---\n", `c.yaml: the file is empty`},
		{"trailing separator is fine", head + "---\n", ``},
		{"leading separator is fine", "---\n" + head, ``},
		{"not a mapping", "- a\n- b\n", `c.yaml:1: expected a mapping starting with apiVersion: kubeboot.io/v1alpha1 and kind: Cluster, found a list`},
		{"missing apiVersion", "kind: Cluster\n", `c.yaml:1: apiVersion: missing; a kubeboot configuration starts with apiVersion: kubeboot.io/v1alpha1 and kind: Cluster`},
		{"wrong apiVersion", "apiVersion: kubeboot.io/v1\nkind: Cluster\n", `c.yaml:1: apiVersion: "kubeboot.io/v1" is not supported; expected apiVersion: kubeboot.io/v1alpha1`},
		{"wrong kind", "apiVersion: kubeboot.io/v1alpha1\nkind: Clusters\n", `c.yaml:2: kind: "Clusters" is not supported; expected kind: Cluster`},
		{"second document", head + "---\nfoo: 1\n", `c.yaml:3: a second YAML document starts here`},
		{"syntax", head + "node:\n  name: [a\n", `c.yaml:3: invalid YAML: did not find expected ',' or ']'`}, // yaml.v3's line,
		{"tab indentation", head + "node:\n\tname: a\n", `c.yaml:4: invalid YAML: found character that cannot start any token`},
		{"duplicate key", head + "node:\n  name: a\n  name: b\n", `c.yaml:5: node.name: written twice (first on line 4); keep one`},
		{"case of a field", head + "Networking: {}\n", `c.yaml:3: unknown field "Networking" at the top level; did you mean "networking"?`},
		{"field at the wrong level", head + "podSubnet: 10.244.0.0/16\n", `c.yaml:3: unknown field "podSubnet" at the top level; "podSubnet" belongs in networking`},
		{"kubeadm name", head + "nodeRegistration: {}\n", `c.yaml:3: unknown field "nodeRegistration" at the top level; kubeboot's name for kubeadm's nodeRegistration is node`},
		{"no suggestion lists the fields", head + "etcd:\n  zzzzzz: {}\n", `c.yaml:4: unknown field "zzzzzz" in etcd; the fields in etcd are local, external`},
		{"unknown field in a list entry", head + "hosts:\n- name: a\n  adress: b\n", `c.yaml:5: unknown field "adress" in hosts[0]; did you mean "address"?`},
		{"every unknown field", head + "fooo: 1\nnode:\n  nmae: a\n", "c.yaml:3: unknown field \"fooo\" at the top level; the fields at the top level are apiVersion, kind, clusterName, kubernetesVersion, controlPlaneEndpoint, loadBalancer, imageRepository, certificatesDir, encryptionAlgorithm, certificateValidityPeriod, caCertificateValidityPeriod, networking, etcd, apiServer, controllerManager, scheduler, node, cni, kubeProxy, timeouts, containerd, encryptionAtRest, podSecurity, hardening, join, init, ssh, bundle, hosts\nc.yaml:5: unknown field \"nmae\" in node; did you mean \"name\"?"},
		{"quoted integer", head + "node:\n  bindPort: \"6443\"\n", `c.yaml:4: node.bindPort: expected an integer, found "6443" (remove the quotes)`},
		{"list for a string", head + "node:\n  name: [a, b]\n", `c.yaml:4: node.name: expected a string, found a list`},
		{"scalar for a mapping", head + "networking: 10.0.0.0/8\n", `c.yaml:3: networking: expected a mapping (fields podSubnet, serviceSubnet, dnsDomain), found "10.0.0.0/8"`},
		{"mapping for a map of strings", head + "apiServer:\n  extraArgs:\n    v: {a: b}\n", `c.yaml:5: apiServer.extraArgs[v]: expected a string, found a mapping`},
		{"bad duration", head + "certificateValidityPeriod: 1y\n", `c.yaml:3: certificateValidityPeriod: expected a duration like 8760h or 90m, found "1y"`},
		{"number for a duration", head + "certificateValidityPeriod: 8760\n", `c.yaml:3: certificateValidityPeriod: expected a duration like 8760h or 90m, found the number 8760`},
		{"anchors and merge keys", head + "apiServer:\n  extraArgs: &a\n    v: \"2\"\nscheduler:\n  extraArgs:\n    <<: *a\n    v: \"3\"\n", ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.yaml))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want == "":
			case err == nil:
				t.Fatalf("no error, want %q", tc.want)
			case !strings.HasPrefix(err.Error(), tc.want):
				t.Errorf("error:\n%s\nwant it to start with:\n%s", err, tc.want)
			}
		})
	}
}

func TestParseRecordsLines(t *testing.T) {
	c, err := Parse("f.yaml", []byte(`apiVersion: kubeboot.io/v1alpha1
kind: Cluster
networking:
  podSubnet: 10.244.0.0/16
apiServer:
  certSANs:
  - a.example.com
  - b.example.com
  extraArgs:
    --v: "2"
hosts:
- name: a
  address: 10.0.0.1
`))
	if err != nil {
		t.Fatal(err)
	}
	for path, line := range map[string]int{
		"networking":               3,
		"networking.podSubnet":     4,
		"apiServer.certSANs":       6,
		"apiServer.certSANs[1]":    8,
		"apiServer.extraArgs[--v]": 10,
		"hosts[0]":                 12,
		"hosts[0].address":         13,
		"node.name":                0,
	} {
		if got := c.src.line(path); got != line {
			t.Errorf("line of %s = %d, want %d", path, got, line)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/no-such-file.yaml")
	if err == nil || !strings.Contains(err.Error(), "testdata/no-such-file.yaml") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want string
	}{
		{"fooo", "foo"},
		{"podSubnett", "podSubnet"},
		{"PODSUBNET", "podSubnet"},
		{"servceSubnet", "serviceSubnet"},
		{"x", ""},
		{"completelyDifferent", ""},
	} {
		if got := suggest(tc.s, []string{"foo", "podSubnet", "serviceSubnet", "dnsDomain"}); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.s, got, tc.want)
		}
	}
	if d := editDistance("kitten", "sitting"); d != 3 {
		t.Errorf("editDistance = %d", d)
	}
}
