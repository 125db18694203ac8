// The typed events: their one encoding is the bytes on the log, Decode reads
// them back, and docs/events.md documents every type and field the catalogue
// has (and no type it lacks).

#include "events/types.h"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace runlog::events {
namespace {

Event Envelope(std::string type, std::string payload) {
  Event e;
  e.type = std::move(type);
  e.event_id = "evt_1";
  e.aggregate_id = "task_1";
  e.sequence = 1;
  e.payload = std::move(payload);
  return e;
}

TEST(TypesTest, EncodesCanonicalPayloadsAsTheLogHasThem) {
  EXPECT_EQ(Encode(TaskQueued{}), "{}");
  EXPECT_EQ(Encode(TaskClaimed{"lease_1", "w", "", 1, 5000, 30000}),
            R"({"attempt":1,"key_id":"","lease_expires_at_ms":5000,"lease_id":"lease_1",)"
            R"("lease_ms":30000,"worker_id":"w"})");
  // Always-written JSON members are null when empty; optional ones are left out.
  EXPECT_EQ(Encode(TaskFailed{.error = R"({"code":"X","message":"m"})",
                              .error_code = "X",
                              .step_hashes = "[]",
                              .task_hash = "h",
                              .usage = Usage{}}),
            R"({"error":{"code":"X","message":"m"},"failure":null,"step_hashes":[],)"
            R"("task_hash":"h","usage":{"tokens":0}})");
  // Usage writes what is set; cost in dollars, as the canonical writer prints it.
  EXPECT_EQ(UsageJson(Usage{.tokens = 30,
                            .input_tokens = 10,
                            .output_tokens = 20,
                            .model = "m",
                            .sandbox_cpu_ms = 5,
                            .cost_nanos = 1'500}),
            R"({"cost_usd":0.0000015,"input_tokens":10,"model":"m","output_tokens":20,)"
            R"("sandbox_cpu_ms":5,"tokens":30})");
  EXPECT_EQ(UsdJson(2'000'000'000), "2");
  EXPECT_EQ(UsdJson(123'456'789), "0.123456789");
  for (int64_t nanos : {int64_t{1}, int64_t{7}, int64_t{999'999'999}, int64_t{123'456'789'012}}) {
    EXPECT_EQ(UsageFromJson(UsageJson(Usage{.cost_nanos = nanos})).cost_nanos, nanos) << nanos;
  }
  EXPECT_EQ(Encode(TaskCancelled{.error = R"({"code":"CANCELLED","message":"c"})"}),
            R"({"error":{"code":"CANCELLED","message":"c"}})");
}

TEST(TypesTest, DecodesWhatItEncodes) {
  const std::vector<EventBody> bodies = {
      TaskCreated{.type = "t",
                  .agent_id = "a",
                  .input = R"({"x":[1,2]})",
                  .limits = R"({"max_steps":3})",
                  .plan = R"({"steps":[]})",
                  .max_attempts = 3,
                  .priority = -2,
                  .idempotency_key = "k",
                  .request_hash = "rh",
                  .replay_of_task_id = "task_0",
                  .replay_of = R"({"task_hash":"h"})",
                  .recorded_outputs = "{}"},
      StepFinished{.step_index = 2,
                   .status = "failed",
                   .output = "",
                   .error = R"({"code":"TOOL_ERROR","message":"no"})",
                   .error_code = "TOOL_ERROR",
                   .usage = Usage{.tokens = 7, .model = "m", .cost_nanos = 42},
                   .duration_ms = 12,
                   .sandboxed = true,
                   .step_hash = "sh"},
      TaskSucceeded{.result = "\"ok\"", .step_hashes = R"(["a"])", .task_hash = "th"},
      TaskRetryScheduled{"lease_expired", 2, 1, R"({"code":"LEASE_EXPIRED","message":"m"})",
                         "LEASE_EXPIRED"},
      KeyRegistered{"abc", R"(["admin"])", "pro"},
      AgentRegistered{"agent_1", R"({"task_types":{}})"},
  };
  for (const EventBody& body : bodies) {
    auto back = Decode(Envelope(std::string(TypeOf(body)), Encode(body)));
    ASSERT_TRUE(back.has_value()) << TypeOf(body) << ": " << back.error().ToString();
    EXPECT_EQ(*back, body) << TypeOf(body);
  }
}

TEST(TypesTest, MissingMembersReadAsDefaults) {
  auto created = Decode(Envelope("task.created", "{}"));
  ASSERT_TRUE(created.has_value());
  EXPECT_EQ(std::get<TaskCreated>(*created).max_attempts, 1);
  auto key = Decode(Envelope("key.registered", "{}"));
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(std::get<KeyRegistered>(*key).plan, "free");
}

TEST(TypesTest, RefusesWhatItDoesNotKnow) {
  auto unknown = Decode(Envelope("task.teleported", "{}"));
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, "INVALID_ARGUMENT");
  Event v2 = Envelope("task.queued", "{}");
  v2.schema_version = 2;
  EXPECT_EQ(Decode(v2).error().code, "INVALID_ARGUMENT");
  EXPECT_EQ(Decode(Envelope("task.queued", "[1]")).error().code, "INVALID_ARGUMENT");
  EXPECT_EQ(Decode(Envelope("task.queued", "{")).error().code, "INVALID_ARGUMENT");
}

std::string ReadDoc() {
  std::ifstream in(std::string(SOURCE_DIR) + "/docs/events.md");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(TypesTest, DocsDescribeEveryTypeAndFieldOfTheCatalogue) {
  const std::string doc = ReadDoc();
  ASSERT_FALSE(doc.empty());
  std::istringstream lines(doc);
  std::vector<std::string> all;
  for (std::string line; std::getline(lines, line);) all.push_back(line);
  std::set<std::string> catalogued;
  for (const EventSpec& spec : Catalogue()) {
    const std::string name = "`" + std::string(spec.type) + "`";
    catalogued.insert(std::string(spec.type));
    // Its table row, and the notes that name it.
    std::string text;
    bool row = false;
    for (const std::string& line : all) {
      if (line.starts_with("| " + name + " |")) row = true;
      if (line.starts_with("| " + name + " |") ||
          (line.find(name) != std::string::npos && !line.starts_with("|") &&
           !line.starts_with("task.") && !line.starts_with("step."))) {
        text += line + "\n";
      }
    }
    EXPECT_TRUE(row) << "docs/events.md has no table row for " << spec.type;
    for (const FieldSpec& field : spec.fields) {
      const std::regex named("`" + std::string(field.name) + "[`: ]");
      EXPECT_TRUE(std::regex_search(text, named))
          << "docs/events.md does not name field " << field.name << " of " << spec.type;
    }
  }
  // And documents no type the catalogue lacks.
  const std::regex row(R"(^\| `([a-z_]+\.[a-z_]+)` \|)");
  for (const std::string& line : all) {
    std::smatch m;
    if (std::regex_search(line, m, row)) {
      EXPECT_TRUE(catalogued.contains(m[1].str()))
          << "docs/events.md documents " << m[1] << ", which no struct in events/types.h encodes";
    }
  }
}

}  // namespace
}  // namespace runlog::events
