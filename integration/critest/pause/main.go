// Stand-in for registry.k8s.io/pause:3.9: waits until SIGTERM or SIGINT,
// then exits 0, as the pause container does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
}
