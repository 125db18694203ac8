"""Builds the dashboard's files (api/ui/) into a C++ source, served by
runlogd under /ui/ (api/ui.h). Run by the build:
    ui_embed.py OUT.cc FILE...
"""
import os
import sys

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
out, files = sys.argv[1], sys.argv[2:]
delimiter = "RUNLOG_UI"
with open(out, "w", encoding="utf-8") as f:
    f.write("// Generated from api/ui/ by api/ui_embed.py. Do not edit.\n")
    f.write('#include "api/ui.h"\n\nnamespace runlog::api {\n\n')
    f.write("const std::map<std::string_view, UiFile>& UiFiles() {\n")
    f.write("  static const std::map<std::string_view, UiFile> kFiles = {\n")
    for path in files:
        name = os.path.basename(path)
        ctype = TYPES.get(os.path.splitext(name)[1])
        if ctype is None:
            sys.exit(f"{path}: no content type for this kind of file")
        with open(path, encoding="utf-8") as src:
            text = src.read()
        if ")" + delimiter + '"' in text:
            sys.exit(f"{path}: holds the raw-string delimiter")
        f.write(f'      {{"{name}", {{"{ctype}", R"{delimiter}(')
        f.write(text)
        f.write(f'){delimiter}"}}}},\n')
    f.write("  };\n  return kFiles;\n}\n\n}  // namespace runlog::api\n")
