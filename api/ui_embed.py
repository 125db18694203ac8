"""Builds the dashboard's files (api/ui/) into a C++ source, served by
runlogd under /ui/ (api/ui.h). Run by the build:
    ui_embed.py OUT.cc FILE...
"""
import hashlib
import os
import sys

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
out, files = sys.argv[1], sys.argv[2:]
delimiter = "RUNLOG_UI"


def etag(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


texts = {}
for path in files:
    with open(path, encoding="utf-8") as src:
        texts[os.path.basename(path)] = src.read()
# index.html names each other file with its hash ("/ui/app.js?v=…"), so a
# browser may keep them until the next build changes them.
for name, text in texts.items():
    if name != "index.html":
        versioned = f'"/ui/{name}?v={etag(text)}"'
        if f'"/ui/{name}"' not in texts.get("index.html", ""):
            sys.exit(f"index.html: does not name /ui/{name}")
        texts["index.html"] = texts["index.html"].replace(f'"/ui/{name}"', versioned)

with open(out, "w", encoding="utf-8") as f:
    f.write("// Generated from api/ui/ by api/ui_embed.py. Do not edit.\n")
    f.write('#include "api/ui.h"\n\nnamespace runlog::api {\n\n')
    f.write("const std::map<std::string_view, UiFile>& UiFiles() {\n")
    f.write("  static const std::map<std::string_view, UiFile> kFiles = {\n")
    for name, text in texts.items():
        ctype = TYPES.get(os.path.splitext(name)[1])
        if ctype is None:
            sys.exit(f"{name}: no content type for this kind of file")
        if ")" + delimiter + '"' in text:
            sys.exit(f"{name}: holds the raw-string delimiter")
        f.write(f'      {{"{name}", {{"{ctype}", R"{delimiter}(')
        f.write(text)
        f.write(f'){delimiter}", "{etag(text)}"}}}},\n')
    f.write("  };\n  return kFiles;\n}\n\n}  // namespace runlog::api\n")
