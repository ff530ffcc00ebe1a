// Stand-in for busybox's nmeter in the node e2e suite's busybox image
// (registry.k8s.io/e2e-test-images/busybox, see integration/node-e2e.sh
// images). Debian's busybox builds leave nmeter out, and the suite's
// container lifecycle specs read milliseconds from it:
//
//	date -u +%FT$(nmeter -d0 '%3t' | head -n1)Z
//
// Only what that needs is here: `nmeter [-d MSEC] FORMAT`, where FORMAT is
// text with `%t` or `%Nt` (the time of day, HH:MM:SS with N decimals, in
// the local time zone) and `%%`. A line is printed every MSEC milliseconds
// (1000 by default; 0 means at once, again and again) until writing fails,
// as when `head` has read its line. Any other directive is refused.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// render expands FORMAT at time now.
func render(format string, now time.Time) (string, error) {
	var out strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			out.WriteByte(c)
			continue
		}
		i++
		if i < len(format) && format[i] == '%' {
			out.WriteByte('%')
			continue
		}
		decimals := 0
		for i < len(format) && format[i] >= '0' && format[i] <= '9' {
			decimals = decimals*10 + int(format[i]-'0')
			i++
		}
		if i >= len(format) || format[i] != 't' || decimals > 9 {
			return "", fmt.Errorf("unsupported directive in %q: only %%t, %%Nt (N <= 9) and %%%% are", format)
		}
		out.WriteString(now.Format("15:04:05"))
		if decimals > 0 {
			frac := fmt.Sprintf("%09d", now.Nanosecond())
			out.WriteString("." + frac[:decimals])
		}
	}
	return out.String(), nil
}

// parseArgs reads `[-d MSEC] FORMAT`, with MSEC attached (-d0, as busybox
// takes it) or apart (-d 0).
func parseArgs(args []string) (delay int, format string, err error) {
	delay = 1000
	for len(args) > 1 {
		value, ok := strings.CutPrefix(args[0], "-d")
		if !ok {
			break
		}
		args = args[1:]
		if value == "" {
			value, args = args[0], args[1:]
		}
		if delay, err = strconv.Atoi(value); err != nil {
			return 0, "", fmt.Errorf("-d: %w", err)
		}
	}
	if len(args) != 1 {
		return 0, "", fmt.Errorf("usage: nmeter [-d MSEC] FORMAT")
	}
	return delay, args[0], nil
}

func main() {
	delay, format, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "nmeter:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	for {
		line, err := render(format, time.Now())
		if err != nil {
			fmt.Fprintln(os.Stderr, "nmeter:", err)
			os.Exit(1)
		}
		out.WriteString(line + "\n")
		if out.Flush() != nil {
			return
		}
		if delay > 0 {
			time.Sleep(time.Duration(delay) * time.Millisecond)
		}
	}
}
