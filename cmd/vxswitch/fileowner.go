package main

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// The file-ownership model (docs/security.md, Privileges and file ownership): the
// configuration, the keys and the certificates that vxswitch reads belong
// to root or to the user it runs as (site.user, or whoever started it), and
// nobody else may write them: whoever can rewrite the CA file or the PSK
// can join the segment. Secrets are also unreadable by group and others
// (checked where they are read).

// fileOwnerError reports why the file at path, stat'ed as st, breaks the
// model, or nil. siteUID is site.user's uid (-1: none).
func fileOwnerError(path string, st fs.FileInfo, siteUID int) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	uid := int(sys.Uid)
	if uid != 0 && uid != os.Geteuid() && uid != siteUID {
		who := "root"
		if siteUID > 0 {
			who = fmt.Sprintf("root or site.user (uid %d)", siteUID)
		} else if os.Geteuid() != 0 {
			who = fmt.Sprintf("root or uid %d (this process)", os.Geteuid())
		}
		return fmt.Errorf("%s is owned by uid %d: only %s may own it (whoever owns it can change the keys)", path, uid, who)
	}
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%s has mode %04o: group and others must not be able to write it (chmod go-w %s)", path, perm, path)
	}
	return nil
}

// checkFile applies the model to a file a setting names; a file that
// cannot be stat'ed is left to its reader to report.
func (v *validator) checkFile(key, path string) {
	st, err := os.Stat(path)
	if err != nil {
		return
	}
	if err := fileOwnerError(path, st, v.siteUID); err != nil {
		v.errorf(key, "%v", err)
	}
}
