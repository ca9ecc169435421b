#!/usr/bin/env python3
"""Checks fp8probe against docs/fp8probe-json.md, using only the standard library.

  check_probe_json.py schema FP8PROBE DOC   --json output matches the documented table both ways; --device and
                                            --backend filter as documented; bad arguments exit 1
  check_probe_json.py no-icd FP8PROBE DOC   with no Vulkan ICD and no OpenCL platform: exit 0, the CPU device,
                                            a clear 'no driver' line for each, and schema-valid JSON
Exit 0 on success, 1 on a failed check (each printed), 77 (skip) never: every check here can run anywhere.
"""
import json
import os
import re
import subprocess
import sys

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


# ---- the documented schema --------------------------------------------------------------------------------

ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*([^|]*?(?:\\\|[^|]*?)*)\s*\|\s*([^|]*?)\s*\|")


def load_schema(doc_path):
    """{path: (set of types, set of allowed values or None)} from the markdown tables."""
    schema = {}
    with open(doc_path, encoding="utf-8") as f:
        for line in f:
            m = ROW.match(line)
            if not m:
                continue
            path, types, values = m.group(1), m.group(2).replace("\\|", "|"), m.group(3)
            types = {t.strip() for t in types.split("|") if t.strip()}
            allowed = {v.strip() for v in values.split(",") if v.strip()} if values.strip() else None
            if not types <= {"string", "integer", "boolean", "object", "array", "null"}:
                fail("doc row %s has unknown type %s" % (path, types))
            schema[path] = (types, allowed)
    return schema


def json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def walk(value, path, seen, schema):
    """Check every field of the output against the schema; record the paths seen."""
    seen.add(path)
    if path not in schema:
        fail("field %s is not documented" % path)
        return
    types, allowed = schema[path]
    t = json_type(value)
    if not check(t in types, "%s: type %s, documented %s" % (path, t, sorted(types))):
        return
    if allowed is not None and t in ("string", "integer"):
        check(str(value) in allowed, "%s: value %r not among %s" % (path, value, sorted(allowed)))
    if t == "integer" and not path.endswith("native_types"):
        check(value >= 0, "%s: negative %d" % (path, value))
    if t == "object":
        seen.add(path + "{}")  # a non-null object: its documented fields are required
        for k, v in value.items():
            walk(v, (path + "." if path else "") + k, seen, schema)
    elif t == "array":
        if path.endswith("native_types"):
            check(len(value) == 5 and all(json_type(x) == "integer" for x in value),
                  "%s: want five integers, got %r" % (path, value))
            return
        for item in value:
            seen.add(path + "[]{}")
            if check(json_type(item) == "object", "%s[]: items must be objects" % path):
                for k, v in item.items():
                    walk(v, path + "[]." + k, seen, schema)


def validate(doc, schema, where):
    seen = set()
    for k, v in doc.items():
        walk(v, k, seen, schema)
    # Documented fields must appear, unless they sit under an empty array or a null object.
    for path in schema:
        if path in seen:
            continue
        # Required when its parent was a real object (not null) or a non-empty array of objects.
        if "." not in path or path.rsplit(".", 1)[0] + "{}" in seen:
            fail("%s: documented field %s missing" % (where, path))
    return seen


def semantic_checks(doc, where):
    check(doc.get("schema") == 1, "%s: schema %r" % (where, doc.get("schema")))
    names = [b["name"] for b in doc["backends"]]
    check(names == ["vulkan", "opencl", "cpu"], "%s: backends %s" % (where, names))
    states = {b["name"]: b["state"] for b in doc["backends"]}
    check(states.get("cpu") == "ready", "%s: cpu backend %s" % (where, states.get("cpu")))
    for b in doc["backends"]:
        check(b["reason"] != "", "%s: backend %s without a reason" % (where, b["name"]))
    for d in doc["devices"]:
        w = "%s device %d" % (where, d["index"])
        check(d["name"] != "", w + ": empty name")
        check(d["memory"]["device_local_bytes"] > 0, w + ": no memory")
        check(states.get(d["backend"]) == "ready", w + ": device of a backend that is %s" % states.get(d["backend"]))
        for key in ("default", "min", "max"):
            s = d["subgroups"][key]
            check(s & (s - 1) == 0, w + ": subgroup %s %d not a power of two" % (key, s))
        v = d["verdict"]
        check(v["gemm"]["path"].startswith({"vulkan": "vk_", "opencl": "cl_", "cpu": "cpu_"}[d["backend"]]),
              w + ": gemm path %s outside its backend" % v["gemm"]["path"])
        check((v["gemm"]["shape"] is not None) == v["expected_fast"], w + ": expected_fast without a matrix shape")
        if v["native_fp8"] != "none":
            check(v["native_reason"] != "", w + ": native FP8 without evidence")


def run(probe, args, env=None):
    p = subprocess.run([probe] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=240)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def load_json(text, where):
    try:
        return json.loads(text)
    except ValueError as e:
        fail("%s: not JSON (%s)" % (where, e))
        return None


# ---- modes ------------------------------------------------------------------------------------------------

def mode_schema(probe, schema):
    rc, out, err = run(probe, ["--json"])
    check(rc == 0, "--json exit %d: %s" % (rc, err))
    doc = load_json(out, "--json")
    if doc is None:
        return
    seen = validate(doc, schema, "--json")
    semantic_checks(doc, "--json")
    devices = doc["devices"]
    check(any(d["backend"] == "cpu" for d in devices), "no CPU device")
    check([d["index"] for d in devices] == list(range(len(devices))), "indices not 0..n-1")
    # Every documented device field was exercised on at least one device, except shape fields of empty lists.
    check("devices[].verdict.quirks" in seen, "verdict.quirks never seen")

    for d in devices:
        rc, out, err = run(probe, ["--json", "--device", str(d["index"])])
        one = load_json(out, "--device %d" % d["index"])
        if check(rc == 0 and one is not None, "--device %d exit %d" % (d["index"], rc)):
            validate(one, schema, "--device %d" % d["index"])
            check([x["index"] for x in one["devices"]] == [d["index"]], "--device %d selected %s" %
                  (d["index"], [x["index"] for x in one["devices"]]))
            check(one["devices"][0]["name"] == d["name"], "--device %d: another device" % d["index"])
    for backend in ("vulkan", "opencl", "cpu"):
        rc, out, err = run(probe, ["--json", "--backend", backend])
        sub = load_json(out, "--backend " + backend)
        if check(rc == 0 and sub is not None, "--backend %s exit %d" % (backend, rc)):
            got = [x["index"] for x in sub["devices"]]
            want = [x["index"] for x in devices if x["backend"] == backend]
            check(got == want, "--backend %s gave %s, want %s" % (backend, got, want))
            check(len(sub["backends"]) == 3, "--backend filters the backend list")
    # Text mode names every device and the build's shader variants.
    rc, out, err = run(probe, [])
    check(rc == 0, "text exit %d" % rc)
    check("shader variants:" in out and "libfp8 " + doc["library"]["version"] in out, "text header")
    for d in devices:
        check(("[%d] %s: %s" % (d["index"], d["backend"], d["name"])) in out, "text lacks device %d" % d["index"])
    # Bad arguments are errors, not crashes.
    for bad in (["--backend", "metal"], ["--device", str(len(devices))], ["--device", "x"], ["--frobnicate"],
                ["--c-fixture", "name"]):
        rc, out, err = run(probe, bad)
        check(rc == 1 and err != "", "%s: exit %d, stderr %r" % (bad, rc, err))
    rc, out, err = run(probe, ["--help"])
    check(rc == 0 and "--json" in out, "--help")
    # The C fixture of the CPU device compiles in spirit: it names the struct and closes it.
    cpu = [d for d in devices if d["backend"] == "cpu"][0]
    rc, out, err = run(probe, ["--c-fixture", "fixture_here", "--device", str(cpu["index"])])
    check(rc == 0 and "const fp8_device_info fixture_here = {" in out and out.rstrip().endswith("};"),
          "--c-fixture output")


def mode_no_icd(probe, schema):
    env = dict(os.environ)
    env.pop("OCL_ICD_FILENAMES", None)
    env["VK_ICD_FILENAMES"] = "/nonexistent.json"
    env["VK_DRIVER_FILES"] = "/nonexistent.json"
    env["OCL_ICD_VENDORS"] = "/nonexistent-dir"
    rc, out, err = run(probe, ["--json"], env)
    built = (load_json(out, "no ICD --json") or {}).get("build", {})
    rc, out, err = run(probe, [], env)
    check(rc == 0, "no ICD: exit %d (%s)" % (rc, err))
    check("] cpu: " in out, "no ICD: the CPU device is not listed:\n" + out)
    if built.get("vulkan"):
        check("no Vulkan driver" in out, "no ICD: no 'no Vulkan driver' line:\n" + out)
    if built.get("opencl"):
        check("no OpenCL driver" in out, "no ICD: no 'no OpenCL driver' line:\n" + out)
    rc, out, err = run(probe, ["--json"], env)
    check(rc == 0, "no ICD --json: exit %d" % rc)
    doc = load_json(out, "no ICD --json")
    if doc is None:
        return
    validate(doc, schema, "no ICD --json")
    semantic_checks(doc, "no ICD --json")
    states = {b["name"]: b["state"] for b in doc["backends"]}
    build = doc["build"]
    check(states["vulkan"] == ("no_driver" if build["vulkan"] else "not_built"), "vulkan state %s" % states["vulkan"])
    check(states["opencl"] == ("no_driver" if build["opencl"] else "not_built"), "opencl state %s" % states["opencl"])
    check([d["backend"] for d in doc["devices"]] == ["cpu"], "no ICD: devices %s" %
          [d["backend"] for d in doc["devices"]])
    rc, out, err = run(probe, ["--backend", "vulkan"], env)
    check(rc == 0 and "no device matches" in out, "no ICD --backend vulkan: exit %d" % rc)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("schema", "no-icd"):
        print(__doc__, file=sys.stderr)
        return 2
    schema = load_schema(sys.argv[3])
    check(len(schema) > 100, "doc table too small (%d rows): parse error?" % len(schema))
    (mode_schema if sys.argv[1] == "schema" else mode_no_icd)(sys.argv[2], schema)
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
