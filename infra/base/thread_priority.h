#pragma once
// Background threads yield the cores to the threads that answer requests.
// The projector and RocksDB's flush and compaction threads are not on any
// request's path, but on two cores they compete with the HTTP threads and the
// log thread for every slice (docs/decisions/0014-background-threads-yield.md).

#include <initializer_list>
#include <string_view>

namespace runlog::infra {

// Raises to `nice` the nice value of this process's threads whose names begin
// with one of `prefixes`; returns how many it changed. Raising a nice value
// needs no privilege; a thread it cannot change keeps its priority.
int NiceThreadsNamed(std::initializer_list<std::string_view> prefixes, int nice);

}  // namespace runlog::infra
