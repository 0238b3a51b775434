package inventory

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// HasRole says whether the host has role r.
func (h *Host) HasRole(r string) bool { return slices.Contains(h.Roles, r) }

// IsControlPlane says whether the host runs a control-plane instance.
func (h *Host) IsControlPlane() bool { return h.HasRole(RoleControlPlane) }

// NodeIP is the address the cluster reaches the host on: InternalAddress,
// else Address when it is an IP, else "" (detected on the host).
func (h *Host) NodeIP() string {
	if h.InternalAddress != "" {
		return h.InternalAddress
	}
	if net.ParseIP(h.Address) != nil {
		return h.Address
	}
	return ""
}

// ControlPlanes are the hosts with role control-plane, in file order.
func (c *Cluster) ControlPlanes() []*Host { return c.hostsWith(RoleControlPlane, true) }

// Workers are the hosts that are not control planes, in file order.
func (c *Cluster) Workers() []*Host { return c.hostsWith(RoleControlPlane, false) }

func (c *Cluster) hostsWith(role string, has bool) []*Host {
	var hs []*Host
	for i := range c.Hosts {
		if c.Hosts[i].HasRole(role) == has {
			hs = append(hs, &c.Hosts[i])
		}
	}
	return hs
}

// HostSSH is how kubeboot apply logs in to host i: the cluster's ssh block
// overridden field by field by the host's, with the defaults filled in
// (root, port 22, ~/.ssh/known_hosts, sudo nopasswd for a user other than
// root). Relative paths are taken from dir (the inventory's folder) and
// "~/" from home.
func (c *Cluster) HostSSH(i int, dir, home string) SSH {
	var s SSH
	if c.SSH != nil {
		s = *c.SSH
	}
	h := &c.Hosts[i]
	if o := h.SSH; o != nil {
		str := func(dst *string, v string) {
			if v != "" {
				*dst = v
			}
		}
		str(&s.User, o.User)
		str(&s.KeyFile, o.KeyFile)
		str(&s.PassphraseEnv, o.PassphraseEnv)
		str(&s.PasswordEnv, o.PasswordEnv)
		str(&s.PasswordFile, o.PasswordFile)
		str(&s.Password, o.Password)
		str(&s.KnownHostsFile, o.KnownHostsFile)
		if o.Port != 0 {
			s.Port = o.Port
		}
		if o.Agent != nil {
			s.Agent = o.Agent
		}
		if o.Sudo != nil {
			s.Sudo = o.Sudo
		}
		if o.Bastion != nil {
			s.Bastion = o.Bastion
		}
	}
	if h.Port != 0 {
		s.Port = h.Port
	}
	if s.User == "" {
		s.User = "root"
	}
	if s.Port == 0 {
		s.Port = 22
	}
	if s.KnownHostsFile == "" {
		s.KnownHostsFile = "~/.ssh/known_hosts"
	}
	mode := SudoNone
	if s.User != "root" {
		mode = SudoNoPasswd
	}
	sudo := Sudo{Mode: mode}
	if s.Sudo != nil {
		sudo = *s.Sudo
		if sudo.Mode == "" {
			sudo.Mode = mode
			if sudo.PasswordEnv != "" || sudo.PasswordFile != "" {
				sudo.Mode = SudoPassword
			}
		}
	}
	s.Sudo = &sudo
	s.KeyFile = expandPath(s.KeyFile, dir, home)
	s.PasswordFile = expandPath(s.PasswordFile, dir, home)
	s.KnownHostsFile = expandPath(s.KnownHostsFile, dir, home)
	s.Sudo.PasswordFile = expandPath(s.Sudo.PasswordFile, dir, home)
	if b := s.Bastion; b != nil {
		bc := *b
		if bc.Port == 0 {
			bc.Port = 22
		}
		if bc.User == "" {
			bc.User = s.User
		}
		if bc.KeyFile == "" {
			bc.KeyFile, bc.PassphraseEnv = s.KeyFile, s.PassphraseEnv
		}
		if bc.KnownHostsFile == "" {
			bc.KnownHostsFile = s.KnownHostsFile
		}
		if bc.Agent == nil {
			bc.Agent = s.Agent
		}
		bc.KeyFile = expandPath(bc.KeyFile, dir, home)
		bc.PasswordFile = expandPath(bc.PasswordFile, dir, home)
		bc.KnownHostsFile = expandPath(bc.KnownHostsFile, dir, home)
		s.Bastion = &bc
	}
	return s
}

func expandPath(p, dir, home string) string {
	switch {
	case p == "":
		return ""
	case p == "~":
		return home
	case strings.HasPrefix(p, "~/"):
		return filepath.Join(home, p[2:])
	case filepath.IsAbs(p) || dir == "":
		return p
	}
	return filepath.Join(dir, p)
}

var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (v *validator) hosts(c *Cluster) {
	names := map[string]int{}
	addrs := map[string]int{}
	controlPlanes := 0
	for i, h := range c.Hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		switch {
		case h.Name == "":
			v.addAt(p+".name", p, "required")
		case len(h.Name) > 63 || !dnsLabelRE.MatchString(h.Name):
			v.add(p+".name", "%q is not a DNS-1123 label: at most 63 lower-case letters, digits or '-', starting and ending with a letter or digit (e.g. cp1)", h.Name)
		}
		if j, dup := names[h.Name]; dup && h.Name != "" {
			v.add(p+".name", "%q is already the name of hosts[%d]%s; host names must be unique", h.Name, j, v.onLine(fmt.Sprintf("hosts[%d].name", j)))
		} else if h.Name != "" {
			names[h.Name] = i
		}
		switch {
		case h.Address == "":
			v.addAt(p+".address", p, "required: the host's IP address or DNS name")
		case net.ParseIP(h.Address) == nil && dnsSubdomainProblem(strings.ToLower(h.Address)) != "":
			hint := ""
			if strings.Contains(h.Address, ":") {
				hint = " (the SSH port goes in port)"
			}
			v.add(p+".address", "%q is not an IP address or a DNS name%s", h.Address, hint)
		}
		if h.Address != "" {
			key := fmt.Sprintf("%s:%d", strings.ToLower(h.Address), h.Port)
			if j, dup := addrs[key]; dup {
				v.add(p+".address", "%q is already the address of hosts[%d] (%s)%s; each host needs its own address or port", h.Address, j, c.Hosts[j].Name, v.onLine(fmt.Sprintf("hosts[%d].address", j)))
			} else {
				addrs[key] = i
			}
		}
		if a := h.InternalAddress; a != "" {
			if ip := net.ParseIP(a); ip == nil || ip.IsUnspecified() || ip.IsMulticast() {
				v.add(p+".internalAddress", "%q is not a unicast IP address; write the IP the other nodes reach this host on", a)
			}
		}
		if h.Port != 0 {
			v.port(p+".port", h.Port)
		}
		if len(h.Roles) == 0 {
			v.addAt(p+".roles", p, "required: [control-plane], [worker] or [control-plane, worker]")
		}
		seen := map[string]bool{}
		for k, r := range h.Roles {
			f := fmt.Sprintf("%s.roles[%d]", p, k)
			if seen[r] {
				v.add(f, "%q is listed twice", r)
			}
			seen[r] = true
			v.oneOf(f, r, []string{RoleControlPlane, RoleWorker})
		}
		if h.IsControlPlane() {
			controlPlanes++
		}
		v.labels(p+".labels", h.Labels)
		if h.Taints != nil {
			v.taints(p+".taints", *h.Taints)
		}
		if h.SSH != nil {
			v.ssh(p+".ssh", h.SSH)
		}
	}
	if c.SSH != nil {
		v.ssh("ssh", c.SSH)
	}
	if len(c.Hosts) > 0 && controlPlanes == 0 {
		v.add("hosts", "no host has role control-plane; at least one is required")
	}
	if controlPlanes > 1 && c.ControlPlaneEndpoint == "" && (c.LoadBalancer == nil || c.LoadBalancer.Kind != LBExternal) {
		at := "controlPlaneEndpoint"
		if v.src.line(at) == 0 {
			at = "hosts"
		}
		v.addAt("controlPlaneEndpoint", at, "required with %d control-plane hosts: a load balancer or DNS name in front of their API servers", controlPlanes)
	}
	if c.Bundle != "" && len(c.Hosts) == 0 {
		v.add("bundle", "is used by kubeboot apply, which needs hosts; for one node use `kubeboot init --bundle`")
	}
}

func (v *validator) labels(field string, labels map[string]string) {
	for k, val := range labels {
		if p := qualifiedNameProblem(k); p != "" {
			v.addAt(field, field+"["+k+"]", "key %q %s", k, p)
		}
		if len(val) > 63 || !labelValueRE.MatchString(val) {
			v.addAt(field, field+"["+k+"]", "%s: value %q must be at most 63 characters of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric", k, val)
		}
	}
}

func (v *validator) ssh(p string, s *SSH) {
	if s.Port != 0 {
		v.port(p+".port", s.Port)
	}
	if s.Password != "" && (s.PasswordEnv != "" || s.PasswordFile != "") {
		v.add(p+".password", "set one of password, passwordEnv and passwordFile")
	}
	if s.PasswordEnv != "" && s.PasswordFile != "" {
		v.add(p+".passwordFile", "set one of passwordEnv and passwordFile")
	}
	if sd := s.Sudo; sd != nil {
		if sd.Mode != "" {
			v.oneOf(p+".sudo.mode", sd.Mode, []string{SudoNone, SudoNoPasswd, SudoPassword})
		}
		pw := sd.PasswordEnv != "" || sd.PasswordFile != ""
		switch {
		case sd.Mode == SudoPassword && !pw:
			v.add(p+".sudo.mode", "password needs sudo.passwordEnv or sudo.passwordFile (the password is fed to sudo -S on stdin)")
		case pw && sd.Mode != "" && sd.Mode != SudoPassword:
			v.add(p+".sudo.mode", "is %s, but a sudo password is set; write mode: password or drop the password", sd.Mode)
		}
		if sd.PasswordEnv != "" && sd.PasswordFile != "" {
			v.add(p+".sudo.passwordFile", "set one of passwordEnv and passwordFile")
		}
	}
	if b := s.Bastion; b != nil {
		switch {
		case b.Address == "":
			v.addAt(p+".bastion.address", p+".bastion", "required: the jump host's IP address or DNS name")
		case net.ParseIP(b.Address) == nil && dnsSubdomainProblem(strings.ToLower(b.Address)) != "":
			v.add(p+".bastion.address", "%q is not an IP address or a DNS name", b.Address)
		}
		if b.Port != 0 {
			v.port(p+".bastion.port", b.Port)
		}
	}
}

// Warnings are what is allowed but unwise in a configuration: an inline
// password. Each names the file and line.
func Warnings(c *Cluster) []string {
	var w []string
	at := func(field string) string {
		if l := c.src.line(field); l > 0 {
			return fmt.Sprintf("%s:%d: ", c.src.fileName(), l)
		}
		return ""
	}
	check := func(p string, s *SSH) {
		if s != nil && s.Password != "" {
			w = append(w, at(p+".password")+p+".password: a password written in the file; prefer passwordEnv, passwordFile or a key")
		}
	}
	check("ssh", c.SSH)
	cps := 0
	for i := range c.Hosts {
		check(fmt.Sprintf("hosts[%d].ssh", i), c.Hosts[i].SSH)
		if c.Hosts[i].IsControlPlane() {
			cps++
		}
	}
	if cps > 1 && cps%2 == 0 {
		w = append(w, fmt.Sprintf("%d control planes: etcd tolerates no more failures with %d members than with %d (a quorum is %d); use an odd number", cps, cps, cps-1, cps/2+1))
	}
	return w
}

// CheckSSHFiles checks, on the operator's machine, the files the hosts' SSH
// settings name: each key and password file must exist and not be readable
// by others. dir is the inventory's folder, home the operator's home.
func CheckSSHFiles(c *Cluster, dir, home string) error {
	var errs FieldErrors
	seen := map[string]bool{}
	check := func(i int, field, path string) {
		if path == "" || seen[path] {
			return
		}
		seen[path] = true
		at := fmt.Sprintf("hosts[%d]", i)
		for _, f := range []string{at + ".ssh." + field, "ssh." + field} {
			if c.src.line(f) > 0 {
				at = f
				break
			}
		}
		fe := &FieldError{File: c.src.fileName(), Line: c.src.line(at), Field: fmt.Sprintf("hosts[%d] (%s) %s", i, c.Hosts[i].Name, field)}
		fi, err := os.Stat(path)
		switch {
		case err != nil:
			fe.Msg = fmt.Sprintf("%s: %v", path, err)
		case fi.IsDir():
			fe.Msg = path + " is a folder, not a file"
		case fi.Mode().Perm()&0o004 != 0:
			fe.Msg = fmt.Sprintf("%s is readable by every user (mode %04o); run chmod 600 %s", path, fi.Mode().Perm(), path)
		default:
			return
		}
		errs = append(errs, fe)
	}
	for i := range c.Hosts {
		s := c.HostSSH(i, dir, home)
		check(i, "keyFile", s.KeyFile)
		check(i, "passwordFile", s.PasswordFile)
		check(i, "sudo.passwordFile", s.Sudo.PasswordFile)
		if b := s.Bastion; b != nil {
			check(i, "bastion.keyFile", b.KeyFile)
			check(i, "bastion.passwordFile", b.PasswordFile)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}
