package templates

import "strings"

// Where prepare writes the systemd units of what it installs from a bundle.
// /etc/systemd/system, not the package directory /lib/systemd/system: the
// files are not owned by a package, and a unit here wins over a packaged one.
const (
	ContainerdUnitFile = "/etc/systemd/system/containerd.service"
	KubeletUnitFile    = "/etc/systemd/system/kubelet.service"
)

// ContainerdService is containerd's systemd unit as containerd ships it
// (containerd.service, the one Debian's containerd 1.6 package installs),
// starting containerdPath (/usr/bin/containerd when empty).
func ContainerdService(containerdPath string) []byte {
	if containerdPath == "" {
		containerdPath = "/usr/bin/containerd"
	}
	return []byte(strings.Replace(containerdUnit, "@CONTAINERD@", containerdPath, 1))
}

const containerdUnit = `# Copyright The containerd Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=@CONTAINERD@

Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
# Having non-zero Limit*s causes performance problems due to accounting overhead
# in the kernel. We recommend using cgroups to do container-local accounting.
LimitNPROC=infinity
LimitCORE=infinity
LimitNOFILE=infinity
# Comment TasksMax if your systemd version does not supports it.
# Only systemd 226 and above support this version.
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
`

// KubeletService is kubelet.service as the Kubernetes packages (pkgs.k8s.io)
// ship it: ExecStart=/usr/bin/kubelet, which kubeadm's drop-in
// (KubeletDropIn, 10-kubeadm.conf) replaces with the full command line.
func KubeletService() []byte {
	return []byte(`[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
`)
}
