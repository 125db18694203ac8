"""Checks the answers the e2e suites recorded (RUNLOG_RECORD_ANSWERS, see
tests/testing/http_client.h) against docs/openapi.yaml: each JSON answer must
match the schema the spec gives for its route and status, and each route and
status must be in the spec at all.
    validate_answers.py SPEC.yaml ANSWERS_DIR
Exits non-zero naming every answer that does not match. Reads and then
removes the recorded files, so the next run sees only its own answers."""
import collections
import glob
import json
import os
import re
import sys
import warnings

import jsonschema
import yaml

spec_path, answers_dir = sys.argv[1], sys.argv[2]
with open(spec_path, encoding="utf-8") as f:
    spec = yaml.safe_load(f)
warnings.simplefilter("ignore", DeprecationWarning)  # RefResolver, the one Debian 12's 4.10 has
resolver = jsonschema.RefResolver.from_schema(spec)

# Path templates, most literal first ("/v1/tasks/claim" before "/v1/tasks/{task_id}").
routes = []
for template, item in spec["paths"].items():
    pattern = "^" + "/".join("[^/]+" if s.startswith("{") else re.escape(s)
                             for s in template.split("/")) + "$"
    literal = sum(1 for s in template.split("/") if s and not s.startswith("{"))
    routes.append((-literal, template, re.compile(pattern), item))
routes.sort(key=lambda r: r[:2])


def operation(method, path):
    path = path.split("?", 1)[0]
    if path.startswith("/api/v1/"):
        path = path[len("/api"):]
    if len(path) > 1:
        path = path.rstrip("/")
    for _, template, pattern, item in routes:
        if pattern.match(path):
            return template, item.get(method.lower())
    return None, None


def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        _, node = resolver.resolve(ref)
    return node


files = sorted(glob.glob(os.path.join(answers_dir, "*.jsonl")))
if not files:
    sys.exit(f"no answers recorded in {answers_dir}: were the e2e suites run with RUNLOG_RECORD_ANSWERS?")
checked = collections.Counter()
problems = []
skipped = collections.Counter()
for name in files:
    with open(name, encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    for number, line in enumerate(lines, 1):
        try:
            answer = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a test process killed mid-write
        where = f"{answer['method']} {answer['path']} -> {answer['status']}"
        if answer["path"].split("?", 1)[0] in ("/", "/ui") or answer["path"].startswith("/ui/"):
            skipped["the dashboard's files"] += 1  # not the API: docs/dashboard.md
            continue
        template, op = operation(answer["method"], answer["path"])
        if template is None:
            if answer["status"] != 404:  # unknown paths answer 404 by design
                problems.append(f"{where}: no path in the spec")
            continue
        if op is None:
            if answer["status"] != 405:
                problems.append(f"{where}: {template} has no {answer['method']} in the spec")
            continue
        responses = op.get("responses", {})
        response = responses.get(str(answer["status"])) or responses.get("default")
        if response is None:
            # Statuses every route can answer (spec description: 401/403/429/500/503).
            if answer["status"] in (401, 403, 405, 429, 500, 503):
                response = {"content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"}}}}
            else:
                problems.append(f"{where}: status {answer['status']} not in the spec for {template}")
                continue
        response = resolve(response)
        content = response.get("content", {})
        ctype = answer["content_type"].split(";")[0].strip()
        if not ctype.endswith("json"):
            skipped[ctype or "(none)"] += 1
            continue
        media = content.get(ctype) or content.get("application/json")
        if media is None:
            problems.append(f"{where}: the spec has no {ctype} answer for {template} {answer['status']}")
            continue
        try:
            body = json.loads(answer["body"])
        except json.JSONDecodeError as e:
            problems.append(f"{where}: body is not JSON ({e})")
            continue
        schema = media.get("schema", {})
        validator = jsonschema.Draft202012Validator(schema, resolver=resolver)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        for e in errors[:3]:
            at = "/".join(str(p) for p in e.absolute_path)
            problems.append(f"{where}: at /{at}: {e.message[:300]}")
        checked[(answer["method"], template)] += 1
for name in files:
    os.remove(name)

operations = sum(1 for _, _, _, item in routes for m in item if m in ("get", "post", "put", "delete", "patch"))
print(f"validate_answers: {sum(checked.values())} JSON answers checked over "
      f"{len(checked)} of {operations} operations; {sum(skipped.values())} non-JSON answers skipped "
      f"({dict(skipped)}); {len(problems)} problems")
for p in sorted(set(problems))[:200]:
    print("  " + p)
unchecked = sorted(f"{m.upper()} {t}" for _, t, _, item in routes for m in item
                   if m in ("get", "post", "put", "delete") and (m.upper(), t) not in checked)
if unchecked:
    print("validate_answers: operations no recorded answer reached: " + ", ".join(unchecked))
sys.exit(1 if problems else 0)
