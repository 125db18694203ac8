// The one error table (infra/base/error_codes.h) is the only source of codes:
// every entry is well formed and documented for clients, and no production
// source writes a code as a string literal, so a code cannot reach a client
// without an entry (an unknown code would answer 500).

#include "infra/base/error_codes.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace runlog {
namespace {

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ErrorCodes, EveryEntryIsWellFormed) {
  std::set<std::string_view> seen;
  ASSERT_GT(codes::AllCodes().size(), 40u);
  for (const codes::CodeInfo& info : codes::AllCodes()) {
    EXPECT_TRUE(seen.insert(info.code).second) << "twice: " << info.code;
    EXPECT_TRUE(std::regex_match(std::string(info.code), std::regex("[A-Z][A-Z_]*[A-Z]")))
        << info.code;
    EXPECT_GE(info.http_status, 400) << info.code;
    EXPECT_LT(info.http_status, 600) << info.code;
    // A retryable error says when to retry, and only a retryable one does.
    EXPECT_EQ(info.retryable, info.next == codes::NextStep::kRetryLater) << info.code;
    EXPECT_EQ(codes::FindCode(info.code), &info);
  }
  EXPECT_EQ(codes::FindCode("NO_SUCH_CODE"), nullptr);
  EXPECT_EQ(codes::FindCode(codes::kValidationError)->http_status, 400);
  EXPECT_EQ(codes::FindCode(codes::kTaskNotFound)->http_status, 404);
}

TEST(ErrorCodes, DocsNameEveryCode) {
  const std::string api = ReadFile(std::filesystem::path(SOURCE_DIR) / "docs/api.md");
  for (const codes::CodeInfo& info : codes::AllCodes()) {
    EXPECT_NE(api.find("`" + std::string(info.code) + "`"), std::string::npos)
        << "docs/api.md does not name " << info.code;
  }
}

// Production code names codes by their constants: a literal "TASK_NOT_FOUND"
// or Fail("ANY_CODE", …) would bypass the table.
TEST(ErrorCodes, NoSourceWritesACodeAsALiteral) {
  std::set<std::string> known;
  for (const codes::CodeInfo& info : codes::AllCodes()) known.emplace(info.code);
  const std::regex literal("\"([A-Z][A-Z_]{2,}[A-Z])\"");
  const std::regex literal_first_argument(
      R"(\b(Fail|Problem|ErrorJson|FailureJson|PlanFailureJson|Error)\s*[({]\s*"[A-Z][A-Z_]+")");
  std::vector<std::string> found;
  size_t files = 0;
  for (const char* dir : {"api", "events", "infra", "projections", "sandbox", "services"}) {
    for (const auto& entry :
         std::filesystem::recursive_directory_iterator(std::filesystem::path(SOURCE_DIR) / dir)) {
      const std::string ext = entry.path().extension();
      if (ext != ".cc" && ext != ".h") continue;
      if (entry.path().filename() == "error_codes.h") continue;
      ++files;
      std::istringstream lines(ReadFile(entry.path()));
      std::string line;
      for (int n = 1; std::getline(lines, line); ++n) {
        if (auto comment = line.find("//"); comment != std::string::npos) line.resize(comment);
        const std::string where = entry.path().string() + ":" + std::to_string(n) + ": ";
        for (std::sregex_iterator it(line.begin(), line.end(), literal), end; it != end; ++it) {
          if (known.contains((*it)[1])) found.push_back(where + line);
        }
        if (std::regex_search(line, literal_first_argument)) found.push_back(where + line);
      }
    }
  }
  EXPECT_GT(files, 50u);
  EXPECT_TRUE(found.empty()) << found.size() << " literal code(s); use runlog::codes::k…:\n"
                             << [&] {
                                  std::string all;
                                  for (const auto& f : found) all += f + "\n";
                                  return all;
                                }();
}

}  // namespace
}  // namespace runlog
