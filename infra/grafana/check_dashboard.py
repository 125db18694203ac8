"""Checks infra/grafana/runlog.json: every panel query parses as PromQL
(promtool check rules, with Grafana's variables filled in) and names only
metrics runlogd exports (api/metrics.cc), so a renamed metric fails here
rather than as an empty panel.
    check_dashboard.py DASHBOARD.json METRICS.cc"""
import json
import re
import subprocess
import sys
import tempfile

dashboard, metrics_source = sys.argv[1], sys.argv[2]
with open(dashboard, encoding="utf-8") as f:
    dash = json.load(f)
with open(metrics_source, encoding="utf-8") as f:
    exported = set(re.findall(r'\.Name\("(runlog_[a-z_]+)"\)', f.read()))
if not exported:
    sys.exit(f"no metric names found in {metrics_source}")

problems = []
rules = []
for panel in dash["panels"]:
    for target in panel.get("targets", []):
        expr = target["expr"]
        for name in set(re.findall(r"\b(runlog_[a-z_]+)", expr)):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name not in exported and base not in exported:
                problems.append(f"panel '{panel['title']}': {name} is not a metric runlogd exports")
        filled = (expr.replace("$__rate_interval", "5m").replace('"$instance"', '".*"')
                  .replace("$instance", ".*"))
        rules.append({"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": filled})
    if panel.get("gridPos") is None:
        problems.append(f"panel '{panel['title']}' has no gridPos")

with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
    json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)  # JSON is YAML
check = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
if check.returncode != 0:
    problems.append("promtool: " + check.stdout + check.stderr)
print(f"check_dashboard: {len(rules)} queries in {len(dash['panels'])} panels; {len(problems)} problems")
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
