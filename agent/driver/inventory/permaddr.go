package inventory

import (
	"fmt"
	"net"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolGPermAddr is ETHTOOL_GPERMADDR from linux/ethtool.h.
const ethtoolGPermAddr = 0x20

// maxAddrLen bounds the hardware address the kernel may return (MAX_ADDR_LEN).
const maxAddrLen = 32

// ethtoolPermAddr mirrors struct ethtool_perm_addr with room for the data.
type ethtoolPermAddr struct {
	cmd  uint32
	size uint32
	data [maxAddrLen]byte
}

// ifreqData mirrors struct ifreq with ifr_data set.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(unsafe.Pointer(nil))]byte
}

// permanentMAC asks the driver for the burned-in MAC with the
// ETHTOOL_GPERMADDR ioctl. It works on the live system only.
func permanentMAC(name string) (string, error) {
	if len(name) >= unix.IFNAMSIZ {
		return "", fmt.Errorf("permanent mac of %q: name too long: %w", name, ErrMalformed)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("permanent mac of %s: socket: %w", name, err)
	}
	defer unix.Close(fd)
	pa := &ethtoolPermAddr{cmd: ethtoolGPermAddr, size: maxAddrLen}
	var ifr ifreqData
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(pa)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(pa)
	if errno != 0 {
		return "", fmt.Errorf("permanent mac of %s: ethtool: %w", name, errno)
	}
	if pa.size == 0 || pa.size > maxAddrLen {
		return "", nil
	}
	return net.HardwareAddr(pa.data[:pa.size]).String(), nil
}
