//! The pod infra ("pause") program.
//!
//! This file is not a module of the shim: `build.rs` compiles it on its own
//! into a statically linked executable, which the shim embeds and imports
//! into Docker as its built-in pause image. It holds the pod's namespaces
//! open, reaps zombies when it is PID 1 of a shared PID namespace, and exits
//! cleanly on SIGTERM or SIGINT.
//!
//! It uses the C library directly because the standard library offers no
//! signal handling and the program must not depend on any crate.
#![allow(unsafe_code)]

use std::os::raw::c_int;

const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;
const SIGCHLD: c_int = 17;
const WNOHANG: c_int = 1;

type Handler = extern "C" fn(c_int);

extern "C" {
    fn signal(signum: c_int, handler: Handler) -> usize;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn pause() -> c_int;
    fn _exit(status: c_int) -> !;
    fn getpid() -> c_int;
}

extern "C" fn on_terminate(_: c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { _exit(0) }
}

extern "C" fn on_child(_: c_int) {
    let mut status: c_int = 0;
    // SAFETY: waitpid is async-signal-safe; the status pointer is valid.
    while unsafe { waitpid(-1, &mut status, WNOHANG) } > 0 {}
}

fn main() {
    // SAFETY: installing plain C handlers that only call async-signal-safe
    // functions.
    unsafe {
        signal(SIGINT, on_terminate);
        signal(SIGTERM, on_terminate);
        signal(SIGCHLD, on_child);
        if getpid() != 1 {
            eprintln!("pause: not running as PID 1; zombies of other processes are not reaped");
        }
        loop {
            pause();
        }
    }
}
