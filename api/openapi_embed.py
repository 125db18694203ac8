"""Turns docs/openapi.yaml into a C++ source holding it as compact JSON, which
runlogd serves at GET /v1/openapi.json. Run by the build:
    openapi_embed.py IN.yaml OUT.cc
Fails (non-zero) if the YAML does not load or is not an OpenAPI 3.1 document."""
import json
import sys

import yaml

source, out = sys.argv[1], sys.argv[2]
with open(source, encoding="utf-8") as f:
    spec = yaml.safe_load(f)
if not isinstance(spec, dict) or not str(spec.get("openapi", "")).startswith("3.1"):
    sys.exit(f"{source}: not an OpenAPI 3.1 document")
text = json.dumps(spec, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
delimiter = "OPENAPI"
if ")" + delimiter + '"' in text:
    sys.exit(f"{source}: holds the raw-string delimiter )" + delimiter)
with open(out, "w", encoding="utf-8") as f:
    f.write("// Generated from docs/openapi.yaml by api/openapi_embed.py. Do not edit.\n")
    f.write('#include "api/openapi.h"\n\n')
    f.write("namespace runlog::api {\n\n")
    # A literal above 64 KiB is fine for GCC and Clang; split into pieces
    # anyway so no single token is huge.
    f.write("const std::string_view kOpenApiJson =\n")
    step = 16000
    for i in range(0, len(text), step):
        f.write('    R"' + delimiter + "(" + text[i:i + step] + ")" + delimiter + '"\n')
    f.write("    ;\n\n}  // namespace runlog::api\n")
