// Webhooks end to end: runlogd as a separate process, a receiver on
// loopback started by the test, signatures checked with the test's own HMAC.
// The receiver answers 503 for 20 s, then 200, and runlogd is killed with
// SIGKILL while the deliveries are retrying: every event still arrives, and
// no webhook-id is accepted twice. A 410 disables the endpoint; private
// addresses are refused unless runlogd allows them.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <set>
#include <thread>

#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/receiver.h"
#include "tests/testing/runlogd.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace runlog {
namespace {

using namespace std::chrono_literals;
using runlog::testing::HttpClient;
using runlog::testing::Process;
using runlog::testing::Receiver;

constexpr char kKey[] = "rl_test_webhooks_admin";
constexpr char kSecret[] = "your_webhook_secret";

std::unique_ptr<Process> StartServer(const std::string& data, std::string* url,
                                     std::vector<std::string> extra = {"--webhook-allow-private"}) {
  extra.insert(extra.end(),
               {"--webhook-first-backoff-ms", "500", "--webhook-max-backoff-ms", "2000"});
  return runlog::testing::StartRunlogd(data, url, extra);
}

std::string HmacSha256(const std::string& key, const std::string& data) {
  unsigned char md[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}
std::string Hex(const std::string& bytes) {
  std::string out;
  char b[3];
  for (unsigned char c : bytes) {
    std::snprintf(b, sizeof b, "%02x", c);
    out += b;
  }
  return out;
}
std::string Base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// Both signatures of a request, checked as a receiver would.
void ExpectSigned(const Receiver::Request& r) {
  const std::string id = r.headers.at("webhook-id"), ts = r.headers.at("webhook-timestamp");
  EXPECT_EQ(r.headers.at("webhook-signature"),
            "v1," + Base64(HmacSha256(kSecret, id + "." + ts + "." + r.body)));
  EXPECT_EQ(r.headers.at("x-ariftly-signature"), Hex(HmacSha256(kSecret, r.body)));
}

// Creates a task of type "wh", claims it and completes it (or fails it).
std::string RunTask(HttpClient& client, bool succeed) {
  auto created = client.Post("/v1/tasks", R"({"type":"wh","input":{"n":1}})");
  EXPECT_EQ(created.status, 201) << created.body;
  auto claimed = client.Post("/v1/tasks/claim", R"({"types":["wh"],"worker_id":"w1"})");
  EXPECT_EQ(claimed.status, 200) << claimed.body;
  const std::string id = claimed["task"]["id"].GetString();
  const std::string lease = claimed["lease"]["lease_id"].GetString();
  auto done =
      succeed
          ? client.Post("/v1/tasks/" + id + "/complete",
                        R"({"result":{"ok":true},"lease_id":")" + lease + "\"}")
          : client.Post("/v1/tasks/" + id + "/fail",
                        R"({"error":{"code":"BAD","message":"no"},"lease_id":")" + lease + "\"}");
  EXPECT_EQ(done.status, 200) << done.body;
  return id;
}

TEST(Webhooks, RetriedThroughAnOutageAndAKillNineEachEventAcceptedOnce) {
  ::setenv("RUNLOG_ADMIN_KEY", kKey, 1);
  runlog::testing::TempDir dir;
  const std::string data = dir / "data";
  const auto outage_ends = std::chrono::steady_clock::now() + 20s;
  std::mutex mu;
  std::set<std::string> accepted;
  int accepted_twice = 0;
  Receiver receiver([&](const Receiver::Request& r) {
    if (std::chrono::steady_clock::now() < outage_ends) return 503;
    std::lock_guard lock(mu);
    if (!accepted.insert(r.headers.at("webhook-id")).second) ++accepted_twice;
    return 200;
  });
  std::string url;
  auto server = StartServer(data, &url);
  ASSERT_TRUE(server);
  HttpClient client(url);
  client.SetKey(kKey);
  auto hook =
      client.Post("/v1/webhooks", R"({"url":")" + receiver.url() +
                                      R"(","events":["task.complete","task.failed"],"secret":")" +
                                      kSecret + "\"}");
  ASSERT_EQ(hook.status, 201) << hook.body;
  const std::string webhook_id = hook.Str("webhook_id");
  EXPECT_EQ(hook.body.find(kSecret), std::string::npos) << "the secret was echoed";
  std::set<std::string> tasks;
  for (int i = 0; i < 12; ++i) tasks.insert(RunTask(client, i % 3 != 0));
  // Retrying now: kill -9 and start again on the same data.
  ASSERT_TRUE(runlog::testing::WaitFor([&] { return receiver.requests().size() >= 12; }, 15s));
  server->Signal(SIGKILL);
  server->Wait();
  server = StartServer(data, &url);
  ASSERT_TRUE(server);
  HttpClient after(url);
  after.SetKey(kKey);
  for (int i = 0; i < 3; ++i) tasks.insert(RunTask(after, true));
  ASSERT_TRUE(runlog::testing::WaitFor(
      [&] {
        std::lock_guard lock(mu);
        return accepted.size() >= tasks.size();
      },
      60s))
      << "accepted " << accepted.size() << " of " << tasks.size();
  std::this_thread::sleep_for(2s);  // any duplicate would come now
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(accepted.size(), tasks.size());
    EXPECT_EQ(accepted_twice, 0);
  }
  // Each task's end arrived, signed, as the full task record.
  std::set<std::string> delivered_tasks;
  int refused = 0;
  for (const Receiver::Request& r : receiver.requests()) {
    ExpectSigned(r);
    if (r.status == 503) ++refused;
    if (r.status != 200) continue;
    rapidjson::Document body;
    body.Parse(r.body.c_str());
    ASSERT_TRUE(body.IsObject()) << r.body;
    const std::string type = body["type"].GetString();
    EXPECT_TRUE(type == "task.complete" || type == "task.failed") << type;
    delivered_tasks.insert(body["data"]["task_id"].GetString());
    EXPECT_TRUE(body["data"]["artifacts"].IsArray());
  }
  EXPECT_EQ(delivered_tasks, tasks);
  EXPECT_GT(refused, 12);  // retried through the outage
  // The deliveries route shows the attempts.
  auto deliveries = after.Get("/v1/webhooks/" + webhook_id + "/deliveries?limit=1000");
  ASSERT_EQ(deliveries.status, 200) << deliveries.body;
  for (const char* bad : {"0", "1001", "ten", ""}) {
    auto refused = after.Get("/v1/webhooks/" + webhook_id + "/deliveries?limit=" + bad);
    EXPECT_EQ(refused.status, 400) << bad << " " << refused.body;
    EXPECT_EQ(refused.ErrorCode(), "VALIDATION_ERROR") << refused.body;
  }
  EXPECT_EQ(after.Get("/v1/webhooks/" + webhook_id + "/deliveries?limit=2")["deliveries"].Size(),
            2u);
  ASSERT_EQ(deliveries["deliveries"].Size(), tasks.size());
  for (const auto& d : deliveries["deliveries"].GetArray()) {
    EXPECT_STREQ(d["status"].GetString(), "delivered");
    EXPECT_GE(d["attempt_count"].GetInt(), 2);
    const auto& attempts = d["attempts"];
    EXPECT_EQ(attempts[attempts.Size() - 1]["status_code"].GetInt(), 200);
    EXPECT_EQ(attempts[0]["status_code"].GetInt(), 503);
  }
  // Redelivery sends one again, with the same webhook-id.
  const std::string first = deliveries["deliveries"][0]["delivery_id"].GetString();
  auto sent = [&] {
    size_t n = 0;
    for (const auto& r : receiver.requests()) n += r.headers.at("webhook-id") == first;
    return n;
  };
  const size_t before = sent();
  auto again = after.Post("/v1/webhooks/" + webhook_id + "/deliveries/" + first + "/redeliver", "");
  EXPECT_EQ(again.status, 202) << again.body;
  EXPECT_TRUE(runlog::testing::WaitFor([&] { return sent() > before; }, 10s));
}

TEST(Webhooks, A410DisablesTheEndpointAndPrivateAddressesAreRefusedByDefault) {
  ::setenv("RUNLOG_ADMIN_KEY", kKey, 1);
  runlog::testing::TempDir dir;
  Receiver receiver([](const Receiver::Request&) { return 410; });
  {
    std::string url;
    auto server = StartServer(dir / "open", &url);
    ASSERT_TRUE(server);
    HttpClient client(url);
    client.SetKey(kKey);
    auto hook = client.Post("/v1/webhooks",
                            R"({"url":")" + receiver.url() + R"(","events":["task.complete"]})");
    ASSERT_EQ(hook.status, 201) << hook.body;
    const std::string id = hook.Str("webhook_id");
    EXPECT_TRUE(hook.Str("secret").starts_with("whsec_"));  // made for the caller, shown once
    EXPECT_FALSE(client.Get("/v1/webhooks/" + id).json.HasMember("secret"));
    auto listed = client.Get("/v1/webhooks");
    ASSERT_EQ(listed.status, 200) << listed.body;
    ASSERT_EQ(listed["webhooks"].Size(), 1u) << listed.body;
    EXPECT_FALSE(listed["webhooks"][0].HasMember("secret")) << listed.body;
    RunTask(client, true);
    ASSERT_TRUE(runlog::testing::WaitFor(
        [&] { return client.Get("/v1/webhooks/" + id).Str("status") == "disabled"; }, 15s));
    EXPECT_EQ(client.Get("/v1/webhooks/" + id).Str("disabled_reason"), "gone");
    RunTask(client, true);
    std::this_thread::sleep_for(1500ms);
    EXPECT_EQ(receiver.requests().size(), 1u);  // nothing more after the 410
    auto deleted = client.Delete("/v1/webhooks/" + id);
    EXPECT_EQ(deleted.status, 200);
    EXPECT_EQ(client.Get("/v1/webhooks/" + id).ErrorCode(), "WEBHOOK_NOT_FOUND");
  }
  std::string url;
  auto server = StartServer(dir / "default", &url, {});
  ASSERT_TRUE(server);
  HttpClient client(url);
  client.SetKey(kKey);
  for (const std::string& target :
       {receiver.url(), std::string("http://localhost:9/x"), std::string("http://169.254.169.254/"),
        std::string("http://10.1.2.3/x"), std::string("http://[::1]:80/")}) {
    auto refused = client.Post("/v1/webhooks", R"({"url":")" + target + R"("})");
    EXPECT_EQ(refused.status, 422) << target << " " << refused.body;
    EXPECT_EQ(refused.ErrorCode(), "DESTINATION_REFUSED") << target;
  }
  // Ariftly's example, verbatim: a host DNS does not know yet is accepted.
  auto seed = client.Post("/v1/webhooks", R"({"url":"https://your-system.invalid/hooks/ariftly",)"
                                          R"("events":["task.complete","task.failed"],)"
                                          R"("secret":"your_webhook_secret"})");
  EXPECT_EQ(seed.status, 201) << seed.body;
  auto bad = client.Post("/v1/webhooks", R"({"url":"ftp://example.com/x"})");
  EXPECT_EQ(bad.status, 400);
  auto unknown =
      client.Post("/v1/webhooks", R"({"url":"http://93.184.216.34/x","events":["task.nope"]})");
  EXPECT_EQ(unknown.ErrorCode(), "VALIDATION_ERROR");
  // Credentials in a URL never come back.
  auto creds = client.Post("/v1/webhooks", R"({"url":"http://user:pw@93.184.216.34/x"})");
  ASSERT_EQ(creds.status, 201) << creds.body;
  EXPECT_EQ(creds.Str("url"), "http://***@93.184.216.34/x");
}

}  // namespace
}  // namespace runlog
