// docs/openapi.yaml (built in as api/openapi.h) against the server's own
// route table and error codes: a route the spec lacks, a spec route the
// server lacks, a wrong scope or a code missing from either side fails.

#include "api/openapi.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <string>

#include "api/api.h"
#include "infra/base/error_codes.h"

namespace runlog::api {
namespace {

// "/v1/tasks/{task_id}/events" -> "/v1/tasks/{id}/events", as the route table writes it.
std::string Normalized(const std::string& path) {
  return std::regex_replace(path, std::regex(R"(\{[^}/]*\})"), "{id}");
}

std::string Upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

class OpenApi : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.Parse(kOpenApiJson.data(), kOpenApiJson.size());
    ASSERT_FALSE(spec_.HasParseError());
    ASSERT_TRUE(spec_.IsObject() && spec_.HasMember("paths") && spec_["paths"].IsObject());
    for (const auto& path : spec_["paths"].GetObject()) {
      for (const auto& op : path.value.GetObject()) {
        const std::string method = Upper(op.name.GetString());
        if (method == "PARAMETERS" || method == "SUMMARY" || method == "DESCRIPTION") continue;
        operations_[method + " " + Normalized(path.name.GetString())] = &op.value;
      }
    }
  }

  rapidjson::Document spec_;
  std::map<std::string, const rapidjson::Value*> operations_;
};

TEST_F(OpenApi, EveryServedRouteIsInTheSpecAndNothingElse) {
  std::set<std::string> served;
  for (const Api::RouteInfo& r : Api::RouteTable()) served.insert(r.method + " " + r.path);
  for (const std::string& route : served) {
    EXPECT_TRUE(operations_.contains(route)) << "served but not in docs/openapi.yaml: " << route;
  }
  for (const auto& [route, op] : operations_) {
    EXPECT_TRUE(served.contains(route)) << "in docs/openapi.yaml but not served: " << route;
  }
  EXPECT_GT(served.size(), 40u);  // the table was read, not an empty list
}

TEST_F(OpenApi, EachOperationNamesItsRouteScopeAndAnswers) {
  for (const Api::RouteInfo& r : Api::RouteTable()) {
    const auto found = operations_.find(r.method + " " + r.path);
    if (found == operations_.end()) continue;  // the test above says so
    const rapidjson::Value& op = *found->second;
    const std::string where = r.method + " " + r.path;
    ASSERT_TRUE(op.HasMember("operationId")) << where;
    if (!r.name.empty()) {
      EXPECT_TRUE(std::string(op["operationId"].GetString()).starts_with(r.name))
          << where << ": operationId " << op["operationId"].GetString() << ", route " << r.name;
    }
    const bool keyless =
        op.HasMember("security") && op["security"].IsArray() && op["security"].Empty();
    EXPECT_EQ(keyless, r.scope.empty()) << where << " takes scope '" << r.scope << "'";
    if (!r.scope.empty()) {
      ASSERT_TRUE(op.HasMember("x-runlog-scope")) << where;
      EXPECT_EQ(op["x-runlog-scope"].GetString(), r.scope) << where;
    }
    ASSERT_TRUE(op.HasMember("responses") && op["responses"].IsObject()) << where;
    bool success = false;
    for (const auto& answer : op["responses"].GetObject()) {
      success = success || answer.name.GetString()[0] == '2';
    }
    EXPECT_TRUE(success) << where << " documents no 2xx answer";
  }
}

TEST_F(OpenApi, ErrorCodesAreExactlyTheServersWithTheirStatus) {
  const rapidjson::Value& schemas = spec_["components"]["schemas"];
  ASSERT_TRUE(schemas.HasMember("ErrorCode"));
  std::set<std::string> in_spec;
  for (const auto& code : schemas["ErrorCode"]["enum"].GetArray()) in_spec.insert(code.GetString());
  std::set<std::string> served;
  for (const codes::CodeInfo& info : codes::AllCodes()) served.insert(std::string(info.code));
  EXPECT_EQ(in_spec, served);
  // Each code is listed under the HTTP status the server answers it with.
  const rapidjson::Value& by_status = schemas["ErrorCode"]["x-runlog-codes-by-status"];
  for (const codes::CodeInfo& info : codes::AllCodes()) {
    const std::string status = std::to_string(info.http_status);
    ASSERT_TRUE(by_status.HasMember(status.c_str())) << status;
    bool listed = false;
    for (const auto& code : by_status[status.c_str()].GetArray()) {
      listed = listed || info.code == code.GetString();
    }
    EXPECT_TRUE(listed) << info.code << " not under " << status;
  }
}

}  // namespace
}  // namespace runlog::api
