#pragma once
// Checks that every call an agent_contract offered during a test leads
// somewhere: no id left out of its endpoint, and a route that exists for its
// method. Each is called (with the admin key): any answer but "no route"
// (404 NOT_FOUND) or 405 passes, since the admin's tenant may well get 404
// TASK_NOT_FOUND for another's task, or 400 for an empty body.

#include <gtest/gtest.h>

#include <string>

#include "tests/testing/http_client.h"
#include "tests/testing/server.h"

namespace runlog::testing {

inline void ExpectActionsLeadSomewhere(const std::string& url) {
  HttpClient admin(url);
  admin.SetKey(kAdminKey);
  for (const auto& [method, endpoint] : SeenActions::Get().Take()) {
    const std::string path = endpoint.substr(0, endpoint.find('?'));
    EXPECT_TRUE(endpoint.starts_with("/v1/")) << method << " " << endpoint;
    EXPECT_EQ(path.find("//"), std::string::npos) << "an id left out: " << endpoint;
    EXPECT_FALSE(path.ends_with("/")) << "an id left out: " << endpoint;
    const std::string empty;
    HttpResponse r = admin.Do(method, endpoint, method == "GET" ? nullptr : &empty, {});
    EXPECT_NE(r.status, 405) << method << " " << endpoint << ": " << r.body;
    EXPECT_FALSE(r.status == 404 && r.ErrorCode() == "NOT_FOUND")
        << method << " " << endpoint << ": no such route";
  }
  SeenActions::Get().Take();  // the checks' own answers
}

}  // namespace runlog::testing
