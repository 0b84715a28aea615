//go:build unix

package testfilter

import (
	"encoding/binary"
	"math"
	"os"
	"syscall"
	"time"
)

// scribble waits, then writes NaNs over the whole file at path through a
// mapping of its own, and then creates marker.
func scribble(path string, wait time.Duration, marker string) {
	time.Sleep(wait) // after the answer has gone: what a hostile plugin does
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return
	}
	nan := math.Float32bits(float32(math.NaN()))
	for i := 0; i+4 <= len(data); i += 4 {
		binary.LittleEndian.PutUint32(data[i:], nan)
	}
	syscall.Munmap(data)
	first(marker)
}
