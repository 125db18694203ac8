// The CLI for people: `runlog tasks|artifacts|keys|usage` against a server's
// HTTP API (docs/openapi.yaml), with a table on stdout for a person and the
// server's JSON answer with --json. Errors go to stderr with the server's
// machine-readable code; exit 0 on 2xx, 1 on an error answer, 3 when the
// server cannot be reached.

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "infra/base/json.h"
#include "infra/cli/commands.h"

namespace runlog::cli {
namespace {

struct Server {
  std::string url = "http://127.0.0.1:8080";
  std::string key;
  bool json = false;
};

struct Answer {
  long status = 0;
  std::string body;
  std::string transport_error;  // set when the server was not reached
};

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

Answer Call(const Server& server, const std::string& method, const std::string& path,
            const std::string* body = nullptr) {
  Answer a;
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  std::string url = server.url;  // "http://host:8080/" as well as without the slash
  while (url.ends_with('/')) url.pop_back();
  url += path;
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 60'000L);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &Collect);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &a.body);
  curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error);
  curl_slist* headers = nullptr;
  const std::string auth = "Authorization: Bearer " + server.key;
  if (!server.key.empty()) headers = curl_slist_append(headers, auth.c_str());
  if (body != nullptr) {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body->size()));
  }
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers);
  const CURLcode rc = curl_easy_perform(curl.get());
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    a.transport_error = *error != '\0' ? error : curl_easy_strerror(rc);
  } else {
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &a.status);
  }
  return a;
}

// A cell: strings as they are, numbers and booleans as JSON, null as "-",
// objects and arrays as compact JSON; cut at 48 characters.
std::string Cell(const json::Value* v) {
  std::string s;
  if (v == nullptr || v->IsNull() || (v->IsString() && v->GetStringLength() == 0)) {
    s = "-";
  } else if (v->IsString()) {
    s.assign(v->GetString(), v->GetStringLength());
  } else if (v->IsDouble()) {  // 0.0000004, not 4e-07: costs are small
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9f", v->GetDouble());
    s = buf;
    while (s.ends_with('0')) s.pop_back();
    if (s.ends_with('.')) s.pop_back();
  } else {
    s = json::Write(*v);
  }
  for (char& c : s) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  if (s.size() > 48) s = s.substr(0, 45) + "...";
  return s;
}

// `path` is "a.b": a member of a member.
const json::Value* At(const json::Value& object, const std::string& path) {
  const json::Value* v = &object;
  for (size_t start = 0; v != nullptr && start <= path.size();) {
    const size_t dot = std::min(path.find('.', start), path.size());
    v = v->IsObject() ? json::Find(*v, std::string_view(path).substr(start, dot - start)) : nullptr;
    start = dot + 1;
  }
  return v;
}

void PrintTable(const std::vector<std::string>& headers,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(headers.size());
  for (size_t c = 0; c < headers.size(); ++c) {
    width[c] = headers[c].size();
    for (const auto& row : rows) width[c] = std::max(width[c], row[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) {
      out += cells[c];
      if (c + 1 < cells.size()) out += std::string(width[c] - cells[c].size() + 2, ' ');
    }
    std::printf("%s\n", out.c_str());
  };
  std::vector<std::string> upper = headers;
  for (auto& h : upper) std::transform(h.begin(), h.end(), h.begin(), ::toupper);
  line(upper);
  for (const auto& row : rows) line(row);
}

// Rows of `items` (an array of objects), one column per path.
void PrintList(const json::Value* items, const std::vector<std::string>& columns) {
  std::vector<std::vector<std::string>> rows;
  if (items != nullptr && items->IsArray()) {
    for (const auto& item : items->GetArray()) {
      std::vector<std::string> row;
      for (const auto& c : columns) row.push_back(Cell(At(item, c)));
      rows.push_back(std::move(row));
    }
  }
  PrintTable(columns, rows);
}

// "field  value" lines for the paths that are present.
void PrintFields(const json::Value& object, const std::vector<std::string>& fields) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& f : fields) {
    if (const json::Value* v = At(object, f)) rows.push_back({f, Cell(v)});
  }
  PrintTable({"field", "value"}, rows);
}

// Shows an answer: its JSON with --json, else `human` of it; an error answer
// as its code and message on stderr.
int Show(const Server& server, const Answer& a,
         const std::function<void(const json::Value&)>& human) {
  if (!a.transport_error.empty()) {
    std::fprintf(stderr, "runlog: cannot reach %s: %s (is runlogd running? --url or RUNLOG_URL)\n",
                 server.url.c_str(), a.transport_error.c_str());
    return 3;
  }
  json::Document doc;
  const bool parsed = json::Parse(a.body, &doc) && doc.IsObject();
  if (a.status < 200 || a.status >= 300) {
    if (server.json) std::printf("%s\n", a.body.c_str());
    const json::Value* code = parsed ? At(doc, "error.code") : nullptr;
    const json::Value* message = parsed ? At(doc, "error.message") : nullptr;
    std::fprintf(stderr, "runlog: %ld %s: %s\n", a.status, code ? Cell(code).c_str() : "",
                 message && message->IsString() ? message->GetString() : a.body.c_str());
    if (a.status == 401 && server.key.empty()) {
      std::fprintf(stderr, "runlog: send a key with --key or RUNLOG_KEY\n");
    }
    return 1;
  }
  if (server.json || !parsed) {
    std::printf("%s\n", a.body.c_str());
  } else {
    human(doc);
  }
  return 0;
}

// `text` as one URL component (a path segment or a query value).
std::string Escaped(const std::string& text) {
  char* escaped = curl_easy_escape(nullptr, text.c_str(), static_cast<int>(text.size()));
  std::string out = escaped;
  curl_free(escaped);
  return out;
}

// "?name=value&…" of the parameters that have a value; "" if none has.
std::string Query(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [name, value] : params) {
    if (!value.empty()) q += (q.empty() ? "?" : "&") + name + "=" + Escaped(value);
  }
  return q;
}

// An id argument: "" would name another route (`/v1/tasks/` is the list).
const CLI::Validator kNonEmpty(
    [](std::string& value) { return value.empty() ? std::string("an id cannot be empty") : ""; },
    "", "non-empty");

void ServerOptions(CLI::App* sub, const std::shared_ptr<Server>& s) {
  sub->add_option("--url", s->url, "the server (env RUNLOG_URL)")
      ->envname("RUNLOG_URL")
      ->capture_default_str();
  sub->add_option("--key", s->key, "an API key (env RUNLOG_KEY)")->envname("RUNLOG_KEY");
  sub->add_flag("--json", s->json, "print the server's JSON answer instead of a table");
}

// A command with subcommands (`runlog tasks list`): the server options on
// it, and the chosen subcommand's callback sets `run`.
struct Group {
  std::shared_ptr<Server> s = std::make_shared<Server>();
  CLI::App* app = nullptr;
  std::shared_ptr<std::function<int()>> run = std::make_shared<std::function<int()>>();
};

Group AddGroup(CLI::App& parent, const std::string& name, const std::string& description) {
  Group g;
  g.app = parent.add_subcommand(name, description);
  g.app->require_subcommand(1);
  ServerOptions(g.app, g.s);
  return g;
}

// Once the subcommands are added: `runlog tasks list --json` as well as
// `runlog tasks --json list`.
Runner Dispatch(const Group& g) {
  for (CLI::App* sub : g.app->get_subcommands([](CLI::App*) { return true; })) sub->fallthrough();
  return [run = g.run] { return (*run)(); };
}

const std::vector<std::string> kTaskColumns = {
    "id", "type", "status", "agent_id", "attempt", "created_at", "duration_seconds"};

}  // namespace

Runner AddTasks(CLI::App& app) {
  Group g = AddGroup(app, "tasks", "list, show, trace, cancel and replay tasks");
  auto s = g.s;
  auto run = g.run;
  CLI::App* tasks = g.app;

  auto* list = tasks->add_subcommand("list", "the newest tasks, with filters");
  auto status = std::make_shared<std::string>();
  auto type = std::make_shared<std::string>();
  auto agent = std::make_shared<std::string>();
  auto after = std::make_shared<std::string>();
  auto before = std::make_shared<std::string>();
  auto limit = std::make_shared<int>(20);
  auto cursor = std::make_shared<std::string>();
  list->add_option(
      "--status", *status,
      "created, planned, queued, running, succeeded, failed or cancelled (comma-separated)");
  list->add_option("--type", *type, "the task type");
  list->add_option("--agent", *agent, "the agent the tasks were created for");
  list->add_option("--created-after", *after,
                   "created at or after: RFC 3339 (2026-12-05T09:00:00Z), a date or Unix ms");
  list->add_option("--created-before", *before, "created before (as --created-after)");
  list->add_option("--limit", *limit, "how many (1-200)")->capture_default_str();
  list->add_option("--cursor", *cursor, "the page after this one (the cursor a list printed)");
  list->callback([=] {
    *run = [=] {
      const Answer a = Call(*s, "GET",
                            "/v1/tasks" + Query({{"status", *status},
                                                 {"type", *type},
                                                 {"agent_id", *agent},
                                                 {"created_after", *after},
                                                 {"created_before", *before},
                                                 {"limit", std::to_string(*limit)},
                                                 {"cursor", *cursor}}));
      return Show(*s, a, [](const json::Value& doc) {
        PrintList(json::Find(doc, "tasks"), kTaskColumns);
        const json::Value* next = json::Find(doc, "next_cursor");
        if (const json::Value* more = json::Find(doc, "has_more");
            more && more->IsTrue() && next && next->IsString()) {
          std::printf("(more: --cursor %s)\n", next->GetString());
        }
      });
    };
  });

  auto id = std::make_shared<std::string>();
  auto* get = tasks->add_subcommand("get", "one task");
  get->add_option("id", *id, "task id")->required()->check(kNonEmpty);
  get->callback([=] {
    *run = [=] {
      return Show(*s, Call(*s, "GET", "/v1/tasks/" + Escaped(*id)), [](const json::Value& doc) {
        PrintFields(doc, {"id", "type", "status", "agent_id", "attempt", "max_attempts", "priority",
                          "created_at", "execution_started_at", "completed_at", "duration_seconds",
                          "tokens_used", "cost_usd", "error.code", "error.message",
                          "failure.step_index", "result", "task_hash", "replay_of_task_id"});
        if (const json::Value* artifacts = json::Find(doc, "artifacts");
            artifacts && artifacts->IsArray() && !artifacts->Empty()) {
          std::printf("artifacts: %s\n", json::Write(*artifacts).c_str());
        }
      });
    };
  });

  auto* trace = tasks->add_subcommand("trace", "a task's steps and status changes");
  trace->add_option("id", *id, "task id")->required()->check(kNonEmpty);
  trace->callback([=] {
    *run = [=] {
      return Show(*s, Call(*s, "GET", "/v1/tasks/" + Escaped(*id) + "/trace"),
                  [](const json::Value& doc) {
                    std::printf("task %s: %s\n", Cell(json::Find(doc, "task_id")).c_str(),
                                Cell(json::Find(doc, "status")).c_str());
                    PrintList(json::Find(doc, "steps"), {"step_index", "tool_name", "status",
                                                         "duration_ms", "sandboxed", "error.code"});
                    std::printf("\n");
                    PrintList(json::Find(doc, "transitions"), {"at", "event", "from", "to"});
                  });
    };
  });

  for (const char* verb : {"cancel", "replay"}) {
    auto* sub = tasks->add_subcommand(verb, std::string(verb) == "cancel"
                                                ? "cancel a task that has not finished"
                                                : "run a finished task again; its trace gives the "
                                                  "verdict (replay.matches) once it ends");
    sub->add_option("id", *id, "task id")->required()->check(kNonEmpty);
    const std::string action = verb;
    sub->callback([=] {
      *run = [=] {
        const std::string empty = "{}";
        return Show(*s, Call(*s, "POST", "/v1/tasks/" + Escaped(*id) + "/" + action, &empty),
                    [](const json::Value& doc) {
                      PrintFields(doc, {"id", "status", "replay_of_task_id", "error.code"});
                    });
      };
    });
  }
  return Dispatch(g);
}

Runner AddArtifacts(CLI::App& app) {
  Group g = AddGroup(app, "artifacts", "list, show, approve and reject artifacts");
  auto s = g.s;
  auto run = g.run;
  CLI::App* artifacts = g.app;
  const std::vector<std::string> columns = {"id",   "task_id",   "type", "approval_status",
                                            "size", "created_at"};

  auto task = std::make_shared<std::string>();
  auto* list = artifacts->add_subcommand("list", "artifacts, oldest first");
  list->add_option("--task", *task, "only this task's");
  list->callback([=] {
    *run = [=] {
      return Show(
          *s, Call(*s, "GET", "/v1/artifacts" + Query({{"task_id", *task}})),
          [=](const json::Value& doc) { PrintList(json::Find(doc, "artifacts"), columns); });
    };
  });
  auto id = std::make_shared<std::string>();
  auto* get = artifacts->add_subcommand("get", "one artifact");
  get->add_option("id", *id, "artifact id")->required()->check(kNonEmpty);
  get->callback([=] {
    *run = [=] {
      return Show(*s, Call(*s, "GET", "/v1/artifacts/" + Escaped(*id)), [](const json::Value& doc) {
        PrintFields(doc,
                    {"id", "task_id", "type", "content_type", "size", "digest", "created_at",
                     "approval_status", "approval_expires_at", "decided_by", "comment", "data"});
      });
    };
  });
  auto comment = std::make_shared<std::string>();
  for (const char* verb : {"approve", "reject"}) {
    auto* sub = artifacts->add_subcommand(verb, std::string(verb) + " an artifact waiting for it");
    sub->add_option("id", *id, "artifact id")->required()->check(kNonEmpty);
    sub->add_option("--comment", *comment, "kept with the decision");
    const std::string action = verb;
    sub->callback([=] {
      *run = [=] {
        std::string body = "{}";
        if (!comment->empty()) {
          json::Document d(rapidjson::kObjectType);
          d.AddMember("comment", json::Value(comment->c_str(), d.GetAllocator()), d.GetAllocator());
          body = json::Write(d);
        }
        return Show(
            *s, Call(*s, "POST", "/v1/artifacts/" + Escaped(*id) + "/" + action, &body),
            [](const json::Value& doc) {
              PrintFields(doc, {"id", "task_id", "approval_status", "decided_by", "comment"});
            });
      };
    });
  }
  return Dispatch(g);
}

Runner AddKeys(CLI::App& app) {
  Group g = AddGroup(app, "keys", "register an account and its key, or add a key");
  auto s = g.s;
  auto run = g.run;
  CLI::App* keys = g.app;
  auto* reg = keys->add_subcommand(
      "register", "a new account with a key (or, with --account and an admin --key, a new key)");
  auto account = std::make_shared<std::string>();
  auto test = std::make_shared<bool>(false);
  reg->add_option("--account", *account, "add the key to this account (needs an admin key)");
  reg->add_flag("--test", *test, "a test-mode key (rl_test_)");
  reg->callback([=] {
    *run = [=] {
      json::Document d(rapidjson::kObjectType);
      if (!account->empty()) {
        d.AddMember("account_id", json::Value(account->c_str(), d.GetAllocator()),
                    d.GetAllocator());
      }
      if (*test) d.AddMember("mode", "test", d.GetAllocator());
      const std::string body = json::Write(d);
      return Show(*s, Call(*s, "POST", "/v1/keys/register", &body), [](const json::Value& doc) {
        PrintFields(doc, {"apiKey", "accountId", "tenant_id", "key_id", "scopes", "plan", "mode"});
        std::printf("(the key is shown only now)\n");
      });
    };
  });
  return Dispatch(g);
}

Runner AddUsage(CLI::App& app) {
  auto s = std::make_shared<Server>();
  auto* usage = app.add_subcommand("usage", "tasks, tokens and cost, by day, type or agent");
  ServerOptions(usage, s);
  auto from = std::make_shared<std::string>();
  auto to = std::make_shared<std::string>();
  auto group = std::make_shared<std::string>("day");
  usage->add_option("--from", *from, "first day, YYYY-MM-DD (default: the first of this month)");
  usage->add_option("--to", *to, "last day, YYYY-MM-DD (default: today)");
  usage->add_option("--group-by", *group, "day, type, agent or none")->capture_default_str();
  return [=] {
    const Answer a =
        Call(*s, "GET", "/v1/usage" + Query({{"from", *from}, {"to", *to}, {"group_by", *group}}));
    return Show(*s, a, [group](const json::Value& doc) {
      const std::vector<std::string> counters = {"tasks_created", "tasks_succeeded", "tasks_failed",
                                                 "tokens", "cost_usd"};
      if (*group != "none") {
        std::vector<std::string> columns = {*group};
        columns.insert(columns.end(), counters.begin(), counters.end());
        PrintList(json::Find(doc, "usage"), columns);
        std::printf("\n");
      }
      std::vector<std::string> total;
      for (const auto& c : counters) total.push_back("total." + c);
      PrintFields(doc, total);
    });
  };
}

}  // namespace runlog::cli
