//go:build !linux

package main

import "errors"

func dropPrivileges(uid, gid int) error {
	return errors.New("site.user: dropping privileges needs Linux")
}

var errThreads = errors.New("limiting capabilities needs Linux")

func limitCapabilities() error { return errThreads }
