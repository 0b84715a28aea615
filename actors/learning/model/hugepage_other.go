//go:build !linux

package model

// adviseHugePages does nothing where transparent huge pages do not exist.
func adviseHugePages([]byte) {}
