// Stand-in for nginx in critest's nginx images
// (registry.k8s.io/e2e-test-images/nginx:1.14-2 and
// gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64).
//
// critest relies on these nginx behaviours, which this program reproduces:
//   - a process named "nginx" (`pidof nginx` from a hostPID container);
//   - its pid in /var/run/nginx.pid (the HostPID spec compares the two);
//   - "master process" in its /proc/<pid>/cmdline (the ContainerPID and PodPID
//     specs grep /proc/1/cmdline for it);
//   - HTTP 200 on "/" on the port given by -port (80 in nginx:1.14-2, 12003 in
//     hostnet-nginx), for the port-mapping and port-forward specs.
//
// It re-executes itself with argv[0] set to nginx's master-process title (the
// pid, the executable and so the process name stay the same), then serves.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const title = "nginx: master process nginx -g daemon off;"

func main() {
	if !strings.HasPrefix(os.Args[0], "nginx: master process") {
		// Exec the real path, not /proc/self/exe: the kernel names the
		// process after the file executed, and `pidof nginx` looks for "nginx".
		exe, err := os.Executable()
		if err != nil {
			log.Fatalf("executable: %v", err)
		}
		args := append([]string{title}, os.Args[1:]...)
		err = syscall.Exec(exe, args, os.Environ())
		log.Fatalf("re-exec: %v", err)
	}
	port := flag.Int("port", 80, "TCP port to serve HTTP on")
	flag.String("g", "", "ignored (nginx global directives)")
	flag.Parse()

	if err := os.WriteFile("/var/run/nginx.pid", []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644); err != nil {
		log.Fatalf("pid file: %v", err)
	}
	// Like nginx as pid 1: exit on SIGTERM/SIGINT/SIGQUIT.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	go func() { <-sigs; os.Exit(0) }()

	page := "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n" +
		"<body><h1>Welcome to nginx!</h1></body></html>\n"
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "nginx")
		fmt.Fprint(w, page)
	})
	log.Printf("nginx stand-in serving on :%d", *port)
	log.Fatal(http.ListenAndServe(fmt.Sprintf(":%d", *port), nil))
}
