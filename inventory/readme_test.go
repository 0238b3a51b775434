package inventory

import (
	"os"
	"strings"
	"testing"
)

// The inventory examples in README.md and README.zh-CN.md are valid
// cluster files with hosts.
func TestREADMEInventoryExamples(t *testing.T) {
	for _, name := range []string{"../README.md", "../README.zh-CN.md"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		i := strings.Index(s, "```yaml\napiVersion: kubeboot.io/v1alpha1\nkind: Cluster\n")
		if i < 0 {
			t.Fatalf("%s: no kind: Cluster example", name)
		}
		s = s[i+len("```yaml\n"):]
		s = s[:strings.Index(s, "```")]
		c, err := Parse(name, []byte(s))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		SetDefaults(c)
		if err := Validate(c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if len(c.Hosts) < 3 || len(c.ControlPlanes()) != 1 || c.Bundle == "" {
			t.Errorf("%s: the example has %d hosts, %d control planes, bundle %q", name, len(c.Hosts), len(c.ControlPlanes()), c.Bundle)
		}
	}
}

// docs/configuration.md's example is a valid cluster file.
func TestConfigurationDocExample(t *testing.T) {
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "```yaml\n")
	if i < 0 {
		t.Fatal("no example")
	}
	s = s[i+len("```yaml\n"):]
	s = s[:strings.Index(s, "```")]
	c, err := Parse("docs/configuration.md", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	SetDefaults(c)
	if err := Validate(c); err != nil {
		t.Error(err)
	}
}
