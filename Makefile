# kubeboot's build and test entry points. README.md names the two that matter:
#   make build && bin/kubeboot init --dry-run     # build and run
#   make test                                     # unit tests, vet, gofmt, race
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X github.com/kubeboot/kubeboot/cmd.Version=$(VERSION)
# Packages with concurrency (key pool, printer, transports, apply, node-status) run under -race.
RACE_PKGS := ./certs/... ./phases/... ./transport/... ./discovery/... ./cluster/... ./nodestatus/... ./apiclient/...

.PHONY: build test lint golden integration e2e e2e-ha e2e-ha-local bench bench-apply k8s-binaries clean vagrant-box vagrant-up vagrant-down vagrant-test vagrant-validate

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/kubeboot ./cmd/kubeboot

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^test/k8sbin/')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags sshd ./test/sshd/
	$(GO) vet ./...
	$(GO) vet -tags integration ./test/integration/
	$(GO) vet -tags e2e ./test/e2e/

test: lint
	$(GO) test ./...
	$(GO) test -race $(RACE_PKGS)

# Rewrite every golden file (test/golden's -update) in the packages that
# have them; review the diff before committing.
golden:
	$(GO) test -count=1 $$($(GO) list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... | awk '/kubeboot\/test\/golden/ {print $$1}') -update

# Real etcd and control-plane binaries, as root in a private network namespace;
# then the golden manifests are compared with what kubeadm v1.34.3's own code renders.
integration:
	test/integration/run.sh
	sh templates/testdata/kubeadmref/run.sh

# Root: a 2-node cluster from kubeboot init/join --bundle on systemd-nspawn
# machines, the bundle built from real components (cached in ~/.cache/kubeboot).
e2e:
	test/e2e/run.sh

# Root: issue 11's proof (test/e2e/ha_test.go): apply 3 control planes + 1
# worker with loadBalancer kind vip on new nspawn machines, power off the
# VIP holder under a /readyz probe loop (the outage), its rejoin, apply
# again changes nothing. KUBEBOOT_E2E_HA_TRIES=5 for min/median/max.
e2e-ha:
	KUBEBOOT_E2E_HA=1 test/e2e/run.sh -test.run TestHAControlPlanes

# The same with loadBalancer kind local: haproxy on the worker at
# 127.0.0.1:6443, a control plane it uses powered off (goal 2 s).
e2e-ha-local:
	KUBEBOOT_E2E_HA=1 KUBEBOOT_E2E_HA_KIND=local test/e2e/run.sh -test.run TestHAControlPlanes

# The clean 1+2 apply on new nspawn machines: start -> 3 Nodes Ready, the
# step split and the bytes sent (root; about 2 minutes warm; not in CI).
bench-apply:
	KUBEBOOT_E2E_BENCH=1 test/e2e/run.sh -test.run TestApplyBench1Plus2

# kubeboot's offline phases against kubeadm's, RSA-2048 and ECDSA-P256.
bench:
	test/bench/offline-phases.sh

# transport.SSH against OpenSSH's real sshd on 127.0.0.1 (root, openssh-server).
.PHONY: integration-ssh
integration-ssh:
	test/sshd/run.sh

# A Vagrant cluster (vagrant/Vagrantfile): the machines, then kubeboot apply
# from this host; KUBECONFIG=vagrant/.vagrant/kubeboot/admin.conf. On LXC the
# box is built first; KB_BUNDLE=... installs from an offline bundle.
PROVIDER ?= lxc
vagrant-box:
	vagrant/lxc/box.sh

vagrant-up: build $(if $(filter lxc,$(PROVIDER)),vagrant-box)
	cd vagrant && vagrant up --provider=$(PROVIDER)

vagrant-down:
	cd vagrant && vagrant destroy -f

# Root: vagrant up 1+2 on LXC from the repository's box, the cluster checks,
# halt and up, destroy and nothing left (test/e2e/vagrant_test.go).
vagrant-test: vagrant-validate
	KUBEBOOT_E2E_VAGRANT=1 test/e2e/run.sh -test.run TestVagrantCluster

# The Vagrantfile with every provider and two sizes. lxc and libvirt check
# their provider blocks too; VirtualBox's check needs VBoxManage, which this
# machine kind has not, so its blocks are skipped (--ignore-provider).
vagrant-validate:
	cd vagrant && for p in lxc libvirt virtualbox; do \
	  flag=; [ $$p = virtualbox ] && ! command -v VBoxManage >/dev/null && flag=--ignore-provider; \
	  VAGRANT_DEFAULT_PROVIDER=$$p vagrant validate $$flag >/dev/null && \
	  KB_CONTROL_PLANES=3 KB_WORKERS=0 KB_OS=rocky9 VAGRANT_DEFAULT_PROVIDER=$$p vagrant validate $$flag >/dev/null || exit 1; \
	  echo "Vagrantfile with $$p $$flag: ok"; \
	done

k8s-binaries:
	test/k8sbin/build.sh

clean:
	rm -rf bin
