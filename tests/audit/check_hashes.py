#!/usr/bin/env python3
"""Independent checker of runlog's step_hash / task_hash (Python 3 stdlib only).

Usage:
    python3 check_hashes.py EXPORT.jsonl [--expect-tasks N] [--json]

EXPORT.jsonl is the output of `runlog export --data DIR` ("-" reads stdin): one
line per event, in log order per partition:
    {"partition":P,"offset":O,"event":{"type":..,"schema_version":..,
     "event_id":..,"aggregate_id":..,"tenant_id":..,"sequence":..,
     "timestamp_ms":..,"payload":{..}}}
Events whose type starts with neither "task." nor "step." are skipped. All
events of one task are in one partition, in sequence order 1, 2, 3, ...

Canonical JSON (docs/hashing.md), implemented here independently:
  - no white space; object members sorted by the keys' UTF-8 bytes; arrays in
    order; literals true/false/null;
  - numbers: an integer literal (no fraction/exponent) within -2^63 .. 2^64-1 is
    written exactly (-0 -> 0); every other number becomes the nearest IEEE
    double, written as ECMAScript Number.prototype.toString (shortest
    round-trip digits d1..dk = repr()'s digits, value = 0.d1..dk x 10^n):
    k<=n<=21 digits + (n-k) zeros; 0<n<=21 d1..dn "." rest; -6<n<=0 "0." (-n
    zeros) digits; else d1["." d2..dk] "e" sign |n-1|; zero is 0; so 2.0 -> 2,
    1e21 -> 1e+21, 18446744073709551616 -> 18446744073709552000;
  - strings: escape only '"' '\\' and characters < U+0020 (\\b \\f \\n \\r \\t,
    others \\u00xx lowercase); everything else raw UTF-8 (incl. '/', U+007F,
    U+2028);
  - input must be strict JSON: invalid UTF-8, lone surrogates, NaN/Infinity,
    numbers overflowing a double and duplicate keys are bad input (exit 2).
Hash = SHA-256 of the canonical UTF-8 bytes, 64 lowercase hex characters.

The hashes, per task (aggregate_id), walking its events in sequence order:
  - input = payload.input of task.created; limits = payload.limits of the last
    task.planned if any, else of task.created; plan = payload.plan of the last
    task.planned, or null if there is none; each task.plan_extended (a planner
    agent's plan) appends its payload.steps to plan.steps.
  - step.started payload: step_index (int, 1-based), tool, tool_version,
    input (resolved), attempt, ...; the latest step.started per step_index is
    remembered.
  - step.finished payload: step_index, status ("succeeded"|"failed"), output
    (object or null), error ({"code","message"} or null), step_hash, plus
    usage/duration fields that are not hashed.
    step_hash = SHA-256 hex of canonical JSON of
      {"step_index": int, "tool": <latest step.started of that index>.tool,
       "tool_version": <same>.tool_version, "input": <same>.input,
       "output": finished.output (null when status is "failed"),
       "status": finished.status,
       "error_code": finished.error.code, or null when error is null}
    and is compared with payload.step_hash.
  - Implied agent step: if the task is run by a worker (task.planned has
    runner "worker", not "executor"), its plan has exactly one step whose tool
    is "agent" and the task has no step.* events at all, its single step is implied:
    on task.succeeded {"step_index":1,"tool":"agent","tool_version":
    plan.steps[0].tool_version,"input":plan.steps[0].input,"output":
    task.succeeded payload.result,"status":"succeeded","error_code":null};
    on a task.failed after at least one task.claimed the same with
    "output":null,"status":"failed","error_code":task.failed payload.error.code;
    on a task.failed without any claim there is no step.
  - On task.succeeded / task.failed (payload step_hashes and task_hash):
    step_hashes = the recomputed step_hash of the last step.finished of each
    step_index, by step_index ascending (or [implied agent step hash]; or []);
    task_hash = SHA-256 hex of canonical JSON of
      {"input": input, "plan": plan, "limits": limits,
       "step_hashes": step_hashes, "status": "succeeded"|"failed",
       "failure_code": task.failed payload.error.code, or null if succeeded}
    Both are compared with the payload. A terminal event without task_hash (or
    step_hashes) is a mismatch (missing hash). task.cancelled carries no hashes
    and is not checked.
  Also reported as mismatches: a step.finished with no earlier step.started of
  its index, and a sequence that is not the previous one + 1.

Output: "checked T tasks, S steps: OK", or one line per mismatch
  "partition P offset O event_id E type T: step_hash mismatch: log has X,
  recomputed Y" then a summary line. T counts checked terminal
  (succeeded/failed) events, S checked steps (step.finished + implied steps).
  --json prints {"tasks":T,"steps":S,"mismatches":[...]} instead.
Exit: 1 on any mismatch, or if --expect-tasks N and T < N; 2 on bad input or
usage; 0 otherwise.
"""

import argparse
import hashlib
import json
import math
import re
import sys

INT_MIN = -(2 ** 63)
UINT_MAX = 2 ** 64 - 1


class BadInput(Exception):
    """The export is not what this checker can read (exit 2)."""


# ---------------------------------------------------------------- canonical JSON

def format_double(x):
    """Rule 5 for a double: ECMAScript Number.prototype.toString."""
    if not math.isfinite(x):
        raise ValueError("non-finite number")
    if x == 0:
        return "0"  # also -0
    sign = "-" if x < 0 else ""
    r = repr(abs(x))  # shortest round-trip digits, e.g. '1.5', '1e-07', '1e+16'
    mant, _, exp = r.partition("e")
    exp = int(exp) if exp else 0
    int_part, _, frac_part = mant.partition(".")
    digits = int_part + frac_part
    point = len(int_part) + exp  # value = 0.digits x 10^point
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        out = digits[0]
        if k > 1:
            out += "." + digits[1:]
        out += "e" + ("+" if n - 1 >= 0 else "-") + str(abs(n - 1))
    return sign + out


def format_number(v):
    """Rule 5 for a parsed value: int within 64 bits exact, else double."""
    if isinstance(v, int):
        if INT_MIN <= v <= UINT_MAX:
            return str(v)
        return format_double(float(v))
    return format_double(v)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f",
            "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f]')


def _escape_char(m):
    c = m.group(0)
    return _ESCAPES.get(c) or "\\u%04x" % ord(c)


def format_string(s):
    """Rule 6."""
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, s) + '"'


def canonical(v):
    """Canonical JSON text (str) of a parsed JSON value."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return format_number(v)
    if isinstance(v, str):
        return format_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(canonical(x) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: kv[0].encode("utf-8"))
        return "{" + ",".join(format_string(k) + ":" + canonical(x) for k, x in items) + "}"
    raise TypeError("not a JSON value: %r" % (v,))


def canonical_bytes(v):
    return canonical(v).encode("utf-8")  # raises on lone surrogates


def sha256_canonical(v):
    return hashlib.sha256(canonical_bytes(v)).hexdigest()


# ---------------------------------------------------------------- strict parsing

def _parse_int(s):
    # Integers within 64 bits stay exact; others become doubles (rule 5).
    if len(s.lstrip("-")) <= 20:
        i = int(s)
        if INT_MIN <= i <= UINT_MAX:
            return i
    return _parse_float(s)


def _parse_float(s):
    f = float(s)
    if not math.isfinite(f):
        raise ValueError("number out of double range: " + s[:40])
    return f


def _parse_constant(s):
    raise ValueError("not strict JSON: " + s)


def _object_pairs(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError("duplicate key " + json.dumps(k))
        obj[k] = v
    return obj


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_strings(v):
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            if _SURROGATE.search(x):
                raise ValueError("lone surrogate in string")
        elif isinstance(x, list):
            stack.extend(x)
        elif isinstance(x, dict):
            for k, y in x.items():
                if _SURROGATE.search(k):
                    raise ValueError("lone surrogate in key")
                stack.append(y)


def loads(text):
    """Strict JSON -> Python value with rule-5 numbers (ValueError if refused)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # strict: invalid UTF-8 raises
    try:
        v = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                       parse_constant=_parse_constant, object_pairs_hook=_object_pairs)
    except RecursionError:
        raise ValueError("nesting too deep")
    _check_strings(v)
    return v


# ---------------------------------------------------------------- hashed objects

def step_object(step_index, tool, tool_version, input_, output, status, error_code):
    return {"step_index": step_index, "tool": tool, "tool_version": tool_version,
            "input": input_, "output": None if status == "failed" else output,
            "status": status, "error_code": error_code}


def step_hash(step_index, tool, tool_version, input_, output, status, error_code):
    return sha256_canonical(step_object(step_index, tool, tool_version, input_, output,
                                        status, error_code))


def task_object(input_, plan, limits, step_hashes, status, failure_code):
    return {"input": input_, "plan": plan, "limits": limits, "step_hashes": list(step_hashes),
            "status": status, "failure_code": failure_code}


def task_hash(input_, plan, limits, step_hashes, status, failure_code):
    return sha256_canonical(task_object(input_, plan, limits, step_hashes, status, failure_code))


# ---------------------------------------------------------------- the checker

class _Task:
    def __init__(self):
        self.next_sequence = 1
        self.created = False
        self.input = None
        self.created_limits = None
        self.planned = False
        self.planned_limits = None
        self.plan = None
        self.runner = None
        self.claimed = False
        self.has_step_events = False
        self.started = {}   # step_index -> step.started payload (latest)
        self.finished = {}  # step_index -> recomputed step_hash of the latest step.finished

    @property
    def limits(self):
        return self.planned_limits if self.planned else self.created_limits


def _need(obj, key, types, where):
    if not isinstance(obj, dict) or key not in obj:
        raise BadInput("%s: missing %r" % (where, key))
    v = obj[key]
    if types is not None and (not isinstance(v, types) or
                              (isinstance(v, bool) and bool not in _tuple(types))):
        raise BadInput("%s: %r has the wrong type" % (where, key))
    return v


def _tuple(t):
    return t if isinstance(t, tuple) else (t,)


def _error_code(payload, where, allow_null):
    err = payload.get("error") if isinstance(payload, dict) else None
    if err is None:
        if allow_null:
            return None
        raise BadInput("%s: missing 'error'" % where)
    return _need(err, "code", str, where + " error")


class Checker:
    def __init__(self):
        self.tasks = {}
        self.task_count = 0
        self.step_count = 0
        self.mismatches = []

    def _mismatch(self, rec, field, log, recomputed, message):
        ev = rec["event"]
        self.mismatches.append({
            "partition": rec["partition"], "offset": rec["offset"],
            "event_id": ev.get("event_id"), "type": ev.get("type"),
            "aggregate_id": ev.get("aggregate_id"), "field": field,
            "log": log, "recomputed": recomputed, "message": message})

    def _compare(self, rec, field, payload, recomputed):
        if field not in payload:
            self._mismatch(rec, field, None, recomputed,
                           "%s mismatch: log has no %s (missing hash), recomputed %s"
                           % (field, field, _show(recomputed)))
        elif payload[field] != recomputed:
            self._mismatch(rec, field, payload[field], recomputed,
                           "%s mismatch: log has %s, recomputed %s"
                           % (field, _show(payload[field]), _show(recomputed)))

    def feed(self, rec, where):
        if not isinstance(rec, dict):
            raise BadInput(where + ": not an object")
        _need(rec, "partition", int, where)
        _need(rec, "offset", int, where)
        ev = _need(rec, "event", dict, where)
        etype = _need(ev, "type", str, where + " event")
        if not (etype.startswith("task.") or etype.startswith("step.")):
            return
        where = "%s (partition %s offset %s, %s)" % (where, rec["partition"], rec["offset"], etype)
        agg = _need(ev, "aggregate_id", str, where)
        seq = _need(ev, "sequence", int, where)
        payload = _need(ev, "payload", dict, where)
        t = self.tasks.setdefault(agg, _Task())
        if seq != t.next_sequence:
            self._mismatch(rec, "sequence", seq, t.next_sequence,
                           "sequence %d of %s, expected %d" % (seq, agg, t.next_sequence))
        t.next_sequence = seq + 1

        if etype == "task.created":
            t.created = True
            t.input = _need(payload, "input", None, where)
            t.created_limits = _need(payload, "limits", None, where)
        elif etype == "task.planned":
            t.planned = True
            t.plan = _need(payload, "plan", None, where)
            t.runner = payload.get("runner")
            t.planned_limits = _need(payload, "limits", None, where)
        elif etype == "task.plan_extended":
            steps = _need(payload, "steps", list, where)
            if not isinstance(t.plan, dict) or not isinstance(t.plan.get("steps"), list):
                raise BadInput("%s: task.plan_extended before a plan" % where)
            t.plan["steps"].extend(steps)
        elif etype == "task.claimed":
            t.claimed = True
        elif etype == "step.started":
            t.has_step_events = True
            idx = _need(payload, "step_index", int, where)
            for k, ty in (("tool", str), ("tool_version", str), ("input", None)):
                _need(payload, k, ty, where)
            t.started[idx] = payload
        elif etype == "step.finished":
            t.has_step_events = True
            self._step_finished(rec, t, payload, where)
        elif etype.startswith("step."):
            t.has_step_events = True
        elif etype in ("task.succeeded", "task.failed"):
            self._terminal(rec, t, etype, payload, where)

    def _step_finished(self, rec, t, payload, where):
        idx = _need(payload, "step_index", int, where)
        status = _need(payload, "status", str, where)
        if status not in ("succeeded", "failed"):
            raise BadInput("%s: status %r" % (where, status))
        output = _need(payload, "output", None, where)
        error_code = _error_code(payload, where, allow_null=True)
        started = t.started.get(idx)
        self.step_count += 1
        if started is None:
            self._mismatch(rec, "step_hash", payload.get("step_hash"), None,
                           "step_hash not recomputable: no step.started for step_index %d" % idx)
            t.finished[idx] = None
            return
        h = step_hash(idx, started["tool"], started["tool_version"], started["input"],
                      output, status, error_code)
        t.finished[idx] = h
        self._compare(rec, "step_hash", payload, h)

    def _implied_agent_plan_step(self, t):
        # Worker-run tasks (task.planned runner "worker") have the implied step.
        if t.runner == "executor" or t.has_step_events or not isinstance(t.plan, dict):
            return None
        steps = t.plan.get("steps")
        if not isinstance(steps, list) or len(steps) != 1:
            return None
        s = steps[0]
        if not isinstance(s, dict) or s.get("tool") != "agent":
            return None
        return s

    def _terminal(self, rec, t, etype, payload, where):
        if not t.created:
            raise BadInput("%s: task has no task.created" % where)
        self.task_count += 1
        status = "succeeded" if etype == "task.succeeded" else "failed"
        failure_code = _error_code(payload, where, allow_null=False) if status == "failed" else None
        plan_step = self._implied_agent_plan_step(t)
        if plan_step is not None and (status == "succeeded" or t.claimed):
            tv = _need(plan_step, "tool_version", str, where + " plan.steps[0]")
            inp = _need(plan_step, "input", None, where + " plan.steps[0]")
            if status == "succeeded":
                output = _need(payload, "result", None, where)
            else:
                output = None
            hashes = [step_hash(1, "agent", tv, inp, output, status, failure_code)]
            self.step_count += 1
        else:
            hashes = [t.finished[i] for i in sorted(t.finished)]
        self._compare(rec, "step_hashes", payload, hashes)
        self._compare(rec, "task_hash", payload,
                      task_hash(t.input, t.plan, t.limits, hashes, status, failure_code))


def _show(v):
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def check_lines(lines):
    """Checks an iterable of export lines (bytes or str). Returns the Checker.

    Raises BadInput on unreadable input."""
    checker = Checker()
    for n, line in enumerate(lines, 1):
        where = "line %d" % n
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise BadInput("%s: invalid UTF-8 at byte %d" % (where, e.start))
        if not line.strip():
            continue
        try:
            rec = loads(line)
        except ValueError as e:
            raise BadInput("%s: invalid JSON: %s" % (where, e))
        try:
            checker.feed(rec, where)
        except (UnicodeEncodeError, ValueError, TypeError) as e:
            raise BadInput("%s: %s" % (where, e))
    return checker


def main(argv=None, stdout=None, stderr=None):
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    ap = argparse.ArgumentParser(description="Recompute runlog step/task hashes from an export.")
    ap.add_argument("export", help="JSON lines from `runlog export` (- for stdin)")
    ap.add_argument("--expect-tasks", type=int, default=None, metavar="N",
                    help="fail unless at least N succeeded/failed tasks were checked")
    ap.add_argument("--json", action="store_true", help="print a JSON report")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    try:
        if args.export == "-":
            checker = check_lines(sys.stdin.buffer)
        else:
            with open(args.export, "rb") as f:
                checker = check_lines(f)
    except OSError as e:
        print("check_hashes: %s" % e, file=stderr)
        return 2
    except BadInput as e:
        print("check_hashes: bad input: %s" % e, file=stderr)
        return 2

    ms = checker.mismatches
    if args.json:
        print(json.dumps({"tasks": checker.task_count, "steps": checker.step_count,
                          "mismatches": ms}, ensure_ascii=False, sort_keys=True), file=stdout)
    else:
        for m in ms:
            print("partition %s offset %s event_id %s type %s: %s"
                  % (m["partition"], m["offset"], m["event_id"], m["type"], m["message"]),
                  file=stdout)
        print("checked %d tasks, %d steps: %s" % (
            checker.task_count, checker.step_count,
            "OK" if not ms else "%d mismatch%s" % (len(ms), "" if len(ms) == 1 else "es")),
            file=stdout)
    rc = 1 if ms else 0
    if args.expect_tasks is not None and checker.task_count < args.expect_tasks:
        print("check_hashes: expected at least %d terminal tasks, checked %d"
              % (args.expect_tasks, checker.task_count), file=stderr)
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
