"""Self-test of check_hashes.py (stdlib unittest).

Run: python3 -m unittest /work/main/tests/audit/check_hashes_test.py
"""

import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

_HERE = os.path.dirname(os.path.abspath(__file__))
_SCRIPT = os.path.join(_HERE, "check_hashes.py")
_spec = importlib.util.spec_from_file_location("check_hashes", _SCRIPT)
ch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ch)


def canon(text):
    """Canonical form of a JSON text, as the checker reads it."""
    return ch.canonical(ch.loads(text))


class CanonicalNumbers(unittest.TestCase):
    # Every example of docs/hashing.md rule 5, plus a few more.
    VECTORS = [
        ("2.0", "2"),
        ("2", "2"),
        ("1e20", "100000000000000000000"),
        ("1e21", "1e+21"),
        ("1.5", "1.5"),
        ("0.000001", "0.000001"),
        ("1e-7", "1e-7"),
        ("1.2345e-7", "1.2345e-7"),
        ("9007199254740993", "9007199254740993"),
        ("18446744073709551615", "18446744073709551615"),
        ("18446744073709551616", "18446744073709552000"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("-9223372036854775809", "-9223372036854776000"),
        ("-0", "0"),
        ("-0.0", "0"),
        ("0.0", "0"),
        ("1e16", "10000000000000000"),
        ("1E2", "100"),
        ("-1.5", "-1.5"),
        ("123e-20", "1.23e-18"),
        ("0.1", "0.1"),
        ("100.25", "100.25"),
        ("123456789012345678901234567890", "1.2345678901234568e+29"),
        ("5e-324", "5e-324"),
        ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ("0.30000000000000004", "0.30000000000000004"),
        ("12345.678e-3", "12.345678"),
        ("1e-6", "0.000001"),
        ("1.0e-6", "0.000001"),
        ("-1e21", "-1e+21"),
        ("999999999999999999999", "1e+21"),
        ("123456789012345680000", "123456789012345680000"),
    ]

    def test_vectors(self):
        for text, want in self.VECTORS:
            with self.subTest(text=text):
                self.assertEqual(canon(text), want)
                self.assertEqual(canon(want), want)  # canonical form is a fixed point

    def test_same_hash_for_2_and_2_0(self):
        self.assertEqual(ch.sha256_canonical(ch.loads('{"a":2.0}')),
                         ch.sha256_canonical(ch.loads('{"a":2}')))

    def test_python_big_int_value(self):
        self.assertEqual(ch.canonical(2 ** 64), "18446744073709552000")
        self.assertEqual(ch.canonical(-0.0), "0")

    def test_refused(self):
        for text in ("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "[1,]",
                     '"\\ud800"', '{"a":"\\udc00x"}', '{"a":1,"a":2}', "01", "{'a':1}"):
            with self.subTest(text=text):
                with self.assertRaises(ValueError):
                    ch.loads(text)
        with self.assertRaises(ValueError):
            ch.loads(b'"\xff"')


class CanonicalStrings(unittest.TestCase):
    def test_escapes(self):
        self.assertEqual(ch.canonical('"\\'), '"\\"\\\\"')
        self.assertEqual(ch.canonical("\b\f\n\r\t"), '"\\b\\f\\n\\r\\t"')
        self.assertEqual(ch.canonical("\x00\x01\x1f"), '"\\u0000\\u0001\\u001f"')
        self.assertEqual(ch.canonical("\x0b"), '"\\u000b"')
        self.assertEqual(canon('"\\u001F"'), '"\\u001f"')

    def test_raw(self):
        self.assertEqual(ch.canonical("a/b"), '"a/b"')
        self.assertEqual(canon('"\\/"'), '"/"')
        self.assertEqual(ch.canonical("\x7f"), '"\x7f"')
        self.assertEqual(canon('"\\u2028"'), '"\u2028"')
        self.assertEqual(ch.canonical_bytes("\u2028"), b'"\xe2\x80\xa8"')
        self.assertEqual(ch.canonical_bytes("\x7f"), b'"\x7f"')
        self.assertEqual(ch.canonical_bytes("é😀"), '"é😀"'.encode("utf-8"))
        self.assertEqual(canon('"\\ud83d\\ude00"'), '"😀"')

    def test_whitespace_and_literals(self):
        self.assertEqual(canon(' { "b" : [ true , null , false ] , "a" : 1 } '),
                         '{"a":1,"b":[true,null,false]}')

    def test_key_order(self):
        self.assertEqual(canon('{"b":1,"a":2,"é":3,"Z":4,"aa":5,"":6}'),
                         '{"":6,"Z":4,"a":2,"aa":5,"b":1,"é":3}')
        # UTF-8 byte order: U+E000 (EE 80 80) before U+1F600 (F0 9F 98 80);
        # UTF-16 order (RFC 8785) would be the reverse.
        self.assertEqual(ch.canonical({"\U0001F600": 1, "\ue000": 2}),
                         '{"\ue000":2,"\U0001F600":1}')
        self.assertEqual(canon('{"a":{"d":1,"c":[{"f":1,"e":2}]}}'),
                         '{"a":{"c":[{"e":2,"f":1}],"d":1}}')


# ------------------------------------------------------------ synthetic export

LIMITS = {"max_steps": 10, "max_total_seconds": 600, "max_step_seconds": 60,
          "max_tokens": 100000}


class ExportBuilder:
    def __init__(self):
        self.records = []
        self.offsets = {}
        self.seq = {}
        self.n = 0

    def add(self, partition, agg, etype, payload):
        self.n += 1
        off = self.offsets.get(partition, 0)
        self.offsets[partition] = off + 1
        seq = self.seq.get(agg, 0) + 1
        self.seq[agg] = seq
        ev = {"type": etype, "schema_version": 1,
              "event_id": "evt_%026d" % self.n, "aggregate_id": agg,
              "tenant_id": "acct_test", "sequence": seq,
              "timestamp_ms": 1763900000000 + self.n, "payload": payload}
        self.records.append({"partition": partition, "offset": off, "event": ev})
        return ev

    def lines(self):
        recs = sorted(self.records, key=lambda r: r["partition"])  # stable: log order
        return [json.dumps(r, ensure_ascii=False) for r in recs]


def build_export():
    """Returns (jsonl text, dict of interesting events)."""
    b = ExportBuilder()
    marks = {}

    # Task A (partition 0): two steps, step 1 fails once and is retried; succeeds.
    a = "task_a"
    a_input = {"q": "héllo \u2028 /", "n": 2.0, "big": 18446744073709551616,
               "small": 1e-7, "exact": 9007199254740993}
    a_plan = {"steps": [
        {"step_index": 1, "tool": "http.get", "tool_version": "1.2.0", "input": {"url": "u"}},
        {"step_index": 2, "tool": "text.upper", "tool_version": "2",
         "input": {"text": {"$ref": "steps.1.output.body"}}}]}
    a_limits = dict(LIMITS, max_steps=5)
    b.add(0, "key_x", "key.registered", {"key_hash": "0" * 64, "scopes": [], "plan": "free"})
    b.add(0, a, "task.created", {"type": "pipeline", "input": a_input, "limits": LIMITS,
                                 "max_attempts": 3, "priority": 0, "plan": a_plan,
                                 "request_hash": "x"})
    b.add(0, a, "task.planned", {"plan": a_plan, "limits": a_limits, "source": "request"})
    b.add(0, a, "task.queued", {})
    b.add(0, a, "task.claimed", {"lease_id": "l1", "worker_id": "w", "attempt": 1,
                                 "lease_expires_at_ms": 1})
    s1 = {"step_index": 1, "tool": "http.get", "tool_version": "1.2.0",
          "input": {"url": "u"}, "attempt": 1}
    b.add(0, a, "step.started", s1)
    h1_failed = ch.step_hash(1, "http.get", "1.2.0", {"url": "u"}, None, "failed", "TIMEOUT")
    b.add(0, a, "step.finished", {"step_index": 1, "status": "failed", "output": None,
                                  "error": {"code": "TIMEOUT", "message": "slow"},
                                  "usage": {"tokens": 0}, "duration_ms": 5,
                                  "sandboxed": True, "step_hash": h1_failed})
    b.add(0, a, "step.started", dict(s1, attempt=2))
    out1 = {"body": "hello world", "status": 200, "ratio": 0.5}
    h1 = ch.step_hash(1, "http.get", "1.2.0", {"url": "u"}, out1, "succeeded", None)
    marks["a_step1"] = b.add(0, a, "step.finished", {
        "step_index": 1, "status": "succeeded", "output": out1, "error": None,
        "usage": {"tokens": 12}, "duration_ms": 7, "sandboxed": True, "step_hash": h1})
    in2 = {"text": "hello world"}
    b.add(0, a, "step.started", {"step_index": 2, "tool": "text.upper", "tool_version": "2",
                                 "input": in2, "attempt": 1})
    out2 = {"text": "HELLO WORLD"}
    h2 = ch.step_hash(2, "text.upper", "2", in2, out2, "succeeded", None)
    b.add(0, a, "step.finished", {"step_index": 2, "status": "succeeded", "output": out2,
                                  "error": None, "usage": {"tokens": 3}, "duration_ms": 1,
                                  "sandboxed": False, "step_hash": h2})
    b.add(0, a, "task.succeeded", {
        "result": out2, "step_hashes": [h1, h2],
        "task_hash": ch.task_hash(a_input, a_plan, a_limits, [h1, h2], "succeeded", None)})

    # Task B (partition 1): fails at step 2.
    t = "task_b"
    b_input = {"x": [1, 2.5, -0.0, 1e21]}
    b_plan = {"steps": [
        {"step_index": 1, "tool": "calc", "tool_version": "1", "input": {"e": "1+1"}},
        {"step_index": 2, "tool": "shell", "tool_version": "3", "input": {"cmd": "false"}}]}
    b.add(1, t, "task.created", {"type": "p", "input": b_input, "limits": LIMITS,
                                 "max_attempts": 1, "priority": 1, "request_hash": "y"})
    b.add(1, t, "task.planned", {"plan": b_plan, "limits": LIMITS, "source": "template"})
    b.add(1, t, "task.queued", {})
    b.add(1, t, "task.claimed", {"lease_id": "l2", "worker_id": "w", "attempt": 1,
                                 "lease_expires_at_ms": 1})
    b.add(1, t, "step.started", {"step_index": 1, "tool": "calc", "tool_version": "1",
                                 "input": {"e": "1+1"}, "attempt": 1})
    hb1 = ch.step_hash(1, "calc", "1", {"e": "1+1"}, {"v": 2}, "succeeded", None)
    b.add(1, t, "step.finished", {"step_index": 1, "status": "succeeded", "output": {"v": 2},
                                  "error": None, "usage": {"tokens": 0}, "duration_ms": 1,
                                  "sandboxed": False, "step_hash": hb1})
    b.add(1, t, "step.started", {"step_index": 2, "tool": "shell", "tool_version": "3",
                                 "input": {"cmd": "false"}, "attempt": 1})
    hb2 = ch.step_hash(2, "shell", "3", {"cmd": "false"}, None, "failed", "TOOL_ERROR")
    b.add(1, t, "step.finished", {"step_index": 2, "status": "failed", "output": None,
                                  "error": {"code": "TOOL_ERROR", "message": "exit 1"},
                                  "usage": {"tokens": 0}, "duration_ms": 2,
                                  "sandboxed": True, "step_hash": hb2})
    marks["b_failed"] = b.add(1, t, "task.failed", {
        "error": {"code": "TOOL_ERROR", "message": "step 2 failed"},
        "failure": {"step": "shell", "index": 2, "code": "TOOL_ERROR", "message": "exit 1"},
        "step_hashes": [hb1, hb2],
        "task_hash": ch.task_hash(b_input, b_plan, LIMITS, [hb1, hb2], "failed", "TOOL_ERROR")})

    # Task C (partition 0): implied agent step, succeeded.
    c = "task_c"
    c_input = {"prompt": "summarise \"this\"\n"}
    c_plan = {"steps": [{"step_index": 1, "tool": "agent", "tool_version": "1",
                         "input": c_input}]}
    b.add(0, c, "task.created", {"type": "agent", "input": c_input, "limits": LIMITS,
                                 "max_attempts": 2, "priority": 0, "request_hash": "z"})
    b.add(0, c, "task.planned", {"plan": c_plan, "limits": LIMITS, "source": "agent"})
    b.add(0, c, "task.queued", {})
    b.add(0, c, "task.claimed", {"lease_id": "l3", "worker_id": "w", "attempt": 1,
                                 "lease_expires_at_ms": 1})
    c_result = {"summary": "ok", "score": 1.0}
    hc = ch.step_hash(1, "agent", "1", c_input, c_result, "succeeded", None)
    b.add(0, c, "task.succeeded", {
        "result": c_result, "step_hashes": [hc],
        "task_hash": ch.task_hash(c_input, c_plan, LIMITS, [hc], "succeeded", None)})

    # Task D (partition 1): agent task failed before any claim: no step.
    d = "task_d"
    b.add(1, d, "task.created", {"type": "agent", "input": {}, "limits": LIMITS,
                                 "max_attempts": 1, "priority": 0, "request_hash": "w"})
    b.add(1, d, "task.planned", {"plan": c_plan, "limits": LIMITS, "source": "agent"})
    b.add(1, d, "task.queued", {})
    b.add(1, d, "task.failed", {
        "error": {"code": "TASK_TIMEOUT", "message": "never claimed"}, "failure": None,
        "step_hashes": [],
        "task_hash": ch.task_hash({}, c_plan, LIMITS, [], "failed", "TASK_TIMEOUT")})

    # Task E (partition 1): cancelled, not checked.
    e = "task_e"
    b.add(1, e, "task.created", {"type": "p", "input": {}, "limits": LIMITS,
                                 "max_attempts": 1, "priority": 0, "request_hash": "v"})
    b.add(1, e, "task.cancel_requested", {"requested_by": "key_x"})
    b.add(1, e, "task.cancelled", {"reason": "user"})
    return "\n".join(b.lines()) + "\n", marks


class CheckExport(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.text, self.marks = build_export()

    def write(self, text, name="export.jsonl"):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def run_main(self, *args):
        out, err = io.StringIO(), io.StringIO()
        rc = ch.main(list(args), stdout=out, stderr=err)
        return rc, out.getvalue(), err.getvalue()

    def run_script(self, *args):
        p = subprocess.run([sys.executable, _SCRIPT] + list(args), capture_output=True,
                           text=True, encoding="utf-8", timeout=60)
        return p.returncode, p.stdout, p.stderr

    def test_passes(self):
        path = self.write(self.text)
        rc, out, err = self.run_script(path, "--expect-tasks", "4")
        self.assertEqual((rc, out.strip()), (0, "checked 4 tasks, 6 steps: OK"), err)
        rc, out, _ = self.run_main(path, "--json")
        self.assertEqual(rc, 0)
        self.assertEqual(json.loads(out), {"tasks": 4, "steps": 6, "mismatches": []})

    def test_expect_tasks(self):
        path = self.write(self.text)
        self.assertEqual(self.run_main(path, "--expect-tasks", "5")[0], 1)
        empty = self.write("", "empty.jsonl")
        rc, out, _ = self.run_main(empty)
        self.assertEqual((rc, out.strip()), (0, "checked 0 tasks, 0 steps: OK"))
        self.assertEqual(self.run_main(empty, "--expect-tasks", "1")[0], 1)

    def test_flipped_output_character(self):
        ev = self.marks["a_step1"]
        # split("\n"), not splitlines(): the export has a raw U+2028 inside a string.
        lines = self.text.split("\n")
        idx = [i for i, l in enumerate(lines) if ev["event_id"] in l]
        self.assertEqual(len(idx), 1)
        self.assertIn("hello world", lines[idx[0]])
        lines[idx[0]] = lines[idx[0]].replace("hello world", "hellp world", 1)
        path = self.write("\n".join(lines) + "\n", "flipped.jsonl")
        rc, out, err = self.run_script(path, "--expect-tasks", "4")
        self.assertEqual(rc, 1, out + err)
        rec = json.loads(lines[idx[0]])
        self.assertIn("partition %d offset %d event_id %s type step.finished: step_hash mismatch: "
                      "log has %s, recomputed " % (rec["partition"], rec["offset"],
                                                   ev["event_id"], ev["payload"]["step_hash"]),
                      out)
        rc, out, _ = self.run_main(path, "--json")
        self.assertEqual(rc, 1)
        ms = json.loads(out)["mismatches"]
        self.assertEqual(ms[0]["event_id"], ev["event_id"])
        self.assertEqual(ms[0]["field"], "step_hash")
        # The task's terminal event disagrees too (its recomputed step_hashes changed).
        self.assertEqual({m["field"] for m in ms[1:]}, {"step_hashes", "task_hash"})
        self.assertEqual({m["type"] for m in ms[1:]}, {"task.succeeded"})

    def test_number_spelling_does_not_change_hash(self):
        # 2.0 -> 2 and 1e21 spelled as a 22-digit literal: same canonical form, same hashes.
        text = self.text.replace('"n": 2.0', '"n": 2').replace("1e+21", "1000000000000000000000")
        self.assertNotEqual(text, self.text)
        self.assertEqual(self.run_main(self.write(text))[0], 0)

    def test_changed_task_input_is_task_hash_mismatch(self):
        ev = self.marks["b_failed"]
        text = self.text.replace('"x": [1, 2.5', '"x": [1, 2.75', 1)
        self.assertNotEqual(text, self.text)
        rc, out, _ = self.run_main(self.write(text), "--json")
        self.assertEqual(rc, 1)
        ms = json.loads(out)["mismatches"]
        self.assertEqual([(m["event_id"], m["field"]) for m in ms],
                         [(ev["event_id"], "task_hash")])

    def test_missing_task_hash(self):
        ev = self.marks["b_failed"]
        lines = []
        for l in filter(None, self.text.split("\n")):
            rec = json.loads(l)
            if rec["event"]["event_id"] == ev["event_id"]:
                del rec["event"]["payload"]["task_hash"]
                l = json.dumps(rec)
            lines.append(l)
        rc, out, _ = self.run_main(self.write("\n".join(lines)))
        self.assertEqual(rc, 1)
        self.assertIn("event_id %s type task.failed: task_hash mismatch: log has no task_hash"
                      % ev["event_id"], out)

    def test_bad_input(self):
        self.assertEqual(self.run_main(self.write("{not json\n", "bad.jsonl"))[0], 2)
        self.assertEqual(self.run_main(self.write('{"partition":0}\n', "bad2.jsonl"))[0], 2)
        self.assertEqual(self.run_main(os.path.join(self.tmp.name, "nope.jsonl"))[0], 2)
        with contextlib.redirect_stderr(io.StringIO()):  # argparse's usage message
            self.assertEqual(self.run_main()[0], 2)
        self.assertEqual(self.run_script()[0], 2)


if __name__ == "__main__":
    unittest.main()
