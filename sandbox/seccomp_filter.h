#pragma once
// The seccomp filter of a sandboxed program: allow by default, refuse with EPERM
// the system calls that reach kernel surface a code step has no use for (mounts,
// namespaces, tracing, keyrings, BPF, modules, clocks, ...). clone3 gets ENOSYS so
// libc falls back to clone, whose namespace flags are then refused. Syscalls of
// another ABI (32-bit int 0x80, x32) kill the process. docs/sandbox.md has the list.
//
// Compiled once per runlogd process with libseccomp and handed to the helper as raw
// BPF (an array of struct sock_filter) in its request: the helper then needs no
// libseccomp and spends no time compiling, it just loads it before exec.

#include <string>

#include "infra/base/result.h"

namespace runlog::sandbox {

// The BPF program for this architecture, compiled on first use (thread-safe).
const Result<std::string>& SeccompProgram();

}  // namespace runlog::sandbox
