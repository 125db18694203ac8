#include "services/prices.h"

#include "infra/base/json.h"

namespace runlog::services {
namespace {

constexpr int64_t kUsd = 1'000'000'000;

PriceTable& Table() {
  static PriceTable table = DefaultPrices();
  return table;
}

// `per_million` nanodollars per million, times `n`, rounded half up.
int64_t Times(int64_t n, int64_t per_million) {
  if (n <= 0 || per_million <= 0) return 0;
  const __int128 nanos = (static_cast<__int128>(n) * per_million + 500'000) / 1'000'000;
  return nanos > INT64_MAX ? INT64_MAX : static_cast<int64_t>(nanos);
}

}  // namespace

PriceTable DefaultPrices() {
  PriceTable t;
  // A mid-range hosted model; operators set their own (docs/tenancy.md).
  t.models["default"] = {1 * kUsd, 3 * kUsd};
  t.sandbox_cpu_second_nanos = 50'000;  // $0.00005 per CPU-second
  return t;
}

Result<PriceTable> PricesFromJson(std::string_view text) {
  json::Document doc;
  if (!json::Parse(text, &doc) || !doc.IsObject()) {
    return Fail(codes::kInvalidArgument, "the prices file is not a JSON object");
  }
  auto usd = [](const json::Value& v, const char* field, int64_t* out) -> Status {
    const json::Value* f = json::Find(v, field);
    if (f == nullptr) return {};
    if (!f->IsNumber() || f->GetDouble() < 0 || f->GetDouble() > 1e6) {
      return Fail(codes::kInvalidArgument,
                  std::string(field) + " must be a number of dollars from 0 to 1e6");
    }
    *out = events::NanosOfUsd(f->GetDouble());
    return {};
  };
  PriceTable table = DefaultPrices();
  if (const json::Value* models = json::Find(doc, "models")) {
    if (!models->IsObject()) return Fail(codes::kInvalidArgument, "\"models\" must be an object");
    for (const auto& m : models->GetObject()) {
      const std::string name(m.name.GetString(), m.name.GetStringLength());
      if (!m.value.IsObject()) {
        return Fail(codes::kInvalidArgument, "model " + name + " must be an object");
      }
      ModelPrice& p = table.models[name];
      for (auto [field, member] :
           {std::pair{"input_per_million_usd", &p.input_per_million_nanos},
            std::pair{"output_per_million_usd", &p.output_per_million_nanos}}) {
        if (auto s = usd(m.value, field, member); !s) {
          return Fail(codes::kInvalidArgument, "model " + name + ": " + s.error().message);
        }
      }
    }
  }
  if (auto s = usd(doc, "sandbox_cpu_second_usd", &table.sandbox_cpu_second_nanos); !s)
    return std::unexpected(s.error());
  return table;
}

void SetPriceTable(PriceTable table) { Table() = std::move(table); }

int64_t PriceOf(const events::Usage& u) {
  const PriceTable& table = Table();
  auto it = table.models.find(u.model);
  if (it == table.models.end()) it = table.models.find("default");
  const ModelPrice price = it != table.models.end() ? it->second : ModelPrice{};
  const int64_t split = u.input_tokens + u.output_tokens;
  const int64_t unsplit = u.tokens > split ? u.tokens - split : 0;
  const int64_t cpu = (u.sandbox_cpu_ms * table.sandbox_cpu_second_nanos + 500) / 1000;
  return Times(u.input_tokens, price.input_per_million_nanos) +
         Times(u.output_tokens + unsplit, price.output_per_million_nanos) + cpu;
}

}  // namespace runlog::services
