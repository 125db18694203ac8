#pragma once
// The dashboard's files (api/ui/), built in by api/ui_embed.py and served by
// runlogd under /ui/ with a CSP that allows only these files.

#include <map>
#include <string_view>

namespace runlog::api {

struct UiFile {
  std::string_view content_type;
  std::string_view body;
  // The first 16 hex digits of the body's SHA-256. index.html asks for the
  // other files as "/ui/app.js?v=ETAG", so they can be cached for good.
  std::string_view etag;
};

// By file name ("index.html", "app.js", "app.css").
const std::map<std::string_view, UiFile>& UiFiles();

// Sent with every /ui/ answer: no inline script or style, nothing from
// elsewhere, never inside a frame.
inline constexpr char kUiCsp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

}  // namespace runlog::api
