#pragma once
// Prices: what a step or a worker's task cost when its usage reports no
// cost_usd (docs/tenancy.md, "Cost"). Models are priced per million input
// and output tokens, found by name or else by the "default" entry; tokens
// reported without the split are priced as output tokens (the dearer side,
// so a budget is not overrun by what was not split). Sandbox CPU time is
// priced per CPU-second. The built-in table has the "default" model and
// the sandbox; `runlogd --prices FILE` replaces it.
//
// Thread contract: the table is set once, before serving (SetPriceTable),
// and only read after.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "events/types.h"
#include "infra/base/result.h"

namespace runlog::services {

struct ModelPrice {
  int64_t input_per_million_nanos = 0;  // nanodollars per million input tokens
  int64_t output_per_million_nanos = 0;
};

struct PriceTable {
  std::map<std::string, ModelPrice, std::less<>> models;  // "default" prices the others
  int64_t sandbox_cpu_second_nanos = 0;
};

PriceTable DefaultPrices();
// {"models": {"<name>": {"input_per_million_usd", "output_per_million_usd"}},
//  "sandbox_cpu_second_usd": n}; each model named replaces the built-in one,
// the sandbox price too if given. INVALID_ARGUMENT names the first problem.
[[nodiscard]] Result<PriceTable> PricesFromJson(std::string_view text);
void SetPriceTable(PriceTable table);

// The cost of `usage` by the table, in nanodollars, ignoring its cost_nanos.
int64_t PriceOf(const events::Usage& usage);
// `usage` with its cost: the reported one if `reported`, else PriceOf.
inline events::Usage Priced(events::Usage usage, bool reported) {
  if (!reported) usage.cost_nanos = PriceOf(usage);
  return usage;
}

}  // namespace runlog::services
