package main

import (
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	now := time.Date(2026, 12, 6, 20, 47, 33, 118065000, time.UTC)
	for format, want := range map[string]string{
		"%3t":       "20:47:33.118",
		"%t":        "20:47:33",
		"at %9t %%": "at 20:47:33.118065000 %",
	} {
		got, err := render(format, now)
		if err != nil || got != want {
			t.Errorf("render(%q) = %q, %v; want %q", format, got, err, want)
		}
	}
	for _, format := range []string{"%c", "%3", "%10t"} {
		if _, err := render(format, now); err == nil {
			t.Errorf("render(%q) accepted an unsupported directive", format)
		}
	}
}

func TestParseArgs(t *testing.T) {
	for _, args := range [][]string{{"-d0", "%3t"}, {"-d", "0", "%3t"}} {
		delay, format, err := parseArgs(args)
		if err != nil || delay != 0 || format != "%3t" {
			t.Errorf("parseArgs(%q) = %d, %q, %v", args, delay, format, err)
		}
	}
	if delay, _, err := parseArgs([]string{"%t"}); err != nil || delay != 1000 {
		t.Errorf("default delay: %d, %v", delay, err)
	}
	if _, _, err := parseArgs([]string{"-dx", "%t"}); err == nil {
		t.Error("a bad delay was accepted")
	}
}
