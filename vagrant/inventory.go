// Package vagrant turns the machines of a Vagrant test cluster into the
// inventory `kubeboot apply` reads: the cluster file and the known_hosts
// that pins each machine's host key. The Vagrantfile beside it collects
// the machines (address, user, key, host keys read over Vagrant's own
// channel) once all are up, and calls `kubeboot config vagrant-inventory`,
// which is Write.
package vagrant

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"gopkg.in/yaml.v3"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/transport"
)

// The files Write makes in its directory.
const (
	ClusterFile    = "cluster.yaml"
	KnownHostsFile = "known_hosts"
)

// Machines is what the Vagrantfile writes (machines.json): the cluster's
// settings and every machine.
type Machines struct {
	// Provider is Vagrant's provider (lxc, virtualbox, libvirt).
	Provider          string `json:"provider"`
	ClusterName       string `json:"clusterName,omitempty"`
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	ImageRepository   string `json:"imageRepository,omitempty"`
	CNI               string `json:"cni,omitempty"`
	PodSubnet         string `json:"podSubnet,omitempty"`
	// Bundle is the offline bundle on the host (absolute, or relative to
	// the directory Write writes to); empty installs from the network.
	Bundle   string    `json:"bundle,omitempty"`
	Machines []Machine `json:"machines"`
}

// Machine is one Vagrant machine.
type Machine struct {
	Name string `json:"name"`
	// Address is the machine's address on the private network, which the
	// host and the other machines reach.
	Address string `json:"address"`
	// Port is its SSH port there (22 when 0).
	Port int `json:"port,omitempty"`
	// User and KeyFile are Vagrant's login (`vagrant ssh-config`): user
	// vagrant with passwordless sudo, the key Vagrant made for the machine.
	User    string   `json:"user"`
	KeyFile string   `json:"keyFile"`
	Roles   []string `json:"roles"`
	// HostKeys are the machine's /etc/ssh/ssh_host_*_key.pub lines, read
	// through Vagrant's communicator (not scanned from the network).
	HostKeys []string `json:"hostKeys"`
}

// ReadMachines reads machines.json.
func ReadMachines(path string) (*Machines, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Machines
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// nested reports whether the provider's machines are containers (LXC),
// whose nf_conntrack hash size kube-proxy cannot change although
// nf_conntrack_max is writable: kube-proxy must leave conntrack alone.
func (m *Machines) nested() bool { return m.Provider == "lxc" }

// check reports every problem of m, naming the machine and the field.
func (m *Machines) check() error {
	var errs []error
	bad := func(who, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", who, fmt.Sprintf(format, args...)))
	}
	if len(m.Machines) == 0 {
		bad("machines", "none (the Vagrantfile defines at least one control plane)")
	}
	for i, mc := range m.Machines {
		who := fmt.Sprintf("machine %d", i)
		if mc.Name != "" {
			who = "machine " + mc.Name
		}
		if mc.Name == "" {
			bad(who, "no name")
		}
		if mc.Address == "" {
			bad(who, "no address")
		}
		if mc.User == "" {
			bad(who, "no user")
		}
		if mc.KeyFile == "" {
			bad(who, "no keyFile (Vagrant's private_key for the machine)")
		}
		if len(mc.HostKeys) == 0 {
			bad(who, "no host keys: the machine's /etc/ssh/ssh_host_*_key.pub could not be read")
		}
		for j, k := range mc.HostKeys {
			if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
				bad(who, "host key %d (%.40q): %v", j, k, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Inventory renders m as the cluster file (knownHosts is the path it names)
// and the known_hosts file.
func Inventory(m *Machines, bundle, keyDir, knownHosts string) (clusterYAML, knownHostsData []byte, err error) {
	if err := m.check(); err != nil {
		return nil, nil, err
	}
	c := inventory.Cluster{
		APIVersion:        inventory.APIVersion,
		Kind:              inventory.Kind,
		ClusterName:       m.ClusterName,
		KubernetesVersion: m.KubernetesVersion,
		ImageRepository:   m.ImageRepository,
		Bundle:            bundle,
		CNI:               inventory.CNI{Plugin: m.CNI},
		Networking:        inventory.Networking{PodSubnet: m.PodSubnet},
		SSH:               &inventory.SSH{KnownHostsFile: knownHosts},
	}
	if m.nested() {
		zero := int32(0)
		c.KubeProxy.ConntrackMaxPerCore = &zero
	}
	// One user for all (Vagrant's), set once; each machine has its own key.
	user := m.Machines[0].User
	same := true
	for _, mc := range m.Machines {
		same = same && mc.User == user
	}
	if same {
		c.SSH.User = user
	}
	var kh bytes.Buffer
	kh.WriteString("# The Vagrant machines' host keys, read through Vagrant's own channel; vagrant destroy removes this file.\n")
	for _, mc := range m.Machines {
		h := inventory.Host{
			Name:    mc.Name,
			Address: mc.Address,
			Roles:   mc.Roles,
			SSH:     &inventory.SSH{KeyFile: relTo(keyDir, mc.KeyFile)},
		}
		if mc.Port != 0 && mc.Port != 22 {
			h.Port = mc.Port
		}
		if !same {
			h.SSH.User = mc.User
		}
		c.Hosts = append(c.Hosts, h)
		port := mc.Port
		if port == 0 {
			port = 22
		}
		addr := knownhosts.Normalize(net.JoinHostPort(mc.Address, strconv.Itoa(port)))
		for _, k := range mc.HostKeys {
			pk, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(k))
			kh.WriteString(knownhosts.Line([]string{addr}, pk) + "\n")
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# The Vagrant cluster's inventory, written by `kubeboot config vagrant-inventory` (vagrant/Vagrantfile)\n# once every machine was up; provider %s. vagrant destroy removes it.\n", m.Provider)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&c); err != nil {
		return nil, nil, err
	}
	return b.Bytes(), kh.Bytes(), nil
}

// relTo is p relative to dir when it is below dir, else p.
func relTo(dir, p string) string {
	if r, err := filepath.Rel(dir, p); err == nil && !strings.HasPrefix(r, "..") && dir != "" {
		return r
	}
	return p
}

// Write writes dir/cluster.yaml and dir/known_hosts for m (each through a
// temporary file and a rename) and checks the cluster file as `kubeboot
// apply` will load it. It returns the cluster file's path.
func Write(m *Machines, dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	bundle := m.Bundle
	if bundle != "" && !filepath.IsAbs(bundle) {
		bundle = filepath.Join(abs, bundle)
	}
	if bundle != "" {
		if _, err := os.Stat(bundle); err != nil {
			return "", fmt.Errorf("the bundle (KB_BUNDLE): %w", err)
		}
	}
	cy, kh, err := Inventory(m, bundle, abs, KnownHostsFile)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", err
	}
	// Checked as apply will load it before anything is written.
	p := filepath.Join(abs, ClusterFile)
	c, err := inventory.Parse(p, cy)
	if err == nil {
		inventory.SetDefaults(c)
		err = inventory.Validate(c)
	}
	if err == nil {
		home, _ := os.UserHomeDir()
		err = inventory.CheckSSHFiles(c, abs, home)
	}
	if err != nil {
		return "", fmt.Errorf("the generated inventory: %w", err)
	}
	if err := transport.WriteFileAtomic(filepath.Join(abs, KnownHostsFile), kh, 0o644); err != nil {
		return "", err
	}
	if err := transport.WriteFileAtomic(p, cy, 0o644); err != nil {
		return "", err
	}
	return p, nil
}
