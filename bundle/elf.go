package bundle

import (
	"debug/elf"
	"fmt"
)

// elfArch returns the GOARCH-style architecture of an ELF executable.
func elfArch(file string) (string, error) {
	f, err := elf.Open(file)
	if err != nil {
		return "", fmt.Errorf("%s is not an ELF executable: %w", file, err)
	}
	defer f.Close()
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_386:
		return "386", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	case elf.EM_ARM:
		return "arm", nil
	case elf.EM_PPC64:
		if f.ByteOrder.String() == "LittleEndian" {
			return "ppc64le", nil
		}
		return "ppc64", nil
	case elf.EM_S390:
		return "s390x", nil
	case elf.EM_RISCV:
		return "riscv64", nil
	case elf.EM_LOONGARCH:
		return "loong64", nil
	}
	return "", fmt.Errorf("%s: unknown ELF machine %s", file, f.Machine)
}

// UnameArch maps `uname -m` to the GOARCH-style names the manifest uses.
func UnameArch(machine string) string {
	switch machine {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "i386", "i686":
		return "386"
	case "armv7l", "armv6l", "armhf":
		return "arm"
	case "ppc64le":
		return "ppc64le"
	case "s390x":
		return "s390x"
	case "riscv64":
		return "riscv64"
	case "loongarch64":
		return "loong64"
	}
	return machine
}
