// Stand-in for registry.k8s.io/e2e-test-images/nonewprivs:1.3 (Kubernetes'
// test/images/nonewprivs): installed setuid root, it prints its effective uid,
// so it prints 0 unless no_new_privs kept the setuid bit from taking effect.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
